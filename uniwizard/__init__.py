"""Uniwizard: shared contracts, configuration and plumbing for the three services."""

__version__ = "0.1.0"
