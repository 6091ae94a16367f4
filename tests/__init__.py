"""Uniwizard test suite (a package, so `tests.stack` never resolves to another project's tests)."""
