"""router_svc: classifies tasks, builds fallback chains and dispatches them."""
