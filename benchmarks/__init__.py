"""Benchmarks for the Uniwizard stack: ``python -m benchmarks.run [--quick] [--with-litellm]``."""
