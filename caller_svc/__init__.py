"""caller_svc: turns blind requests into provider calls, classifies, prices and reports them."""
