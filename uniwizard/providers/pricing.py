"""The one price formula: USD = tokens x the backend's per-1000-token prices.

Cached input tokens are priced as ordinary input (``Usage.input_tokens`` already includes them):
the configuration has no cache-discount field, and over-estimating a cost is the safer error.
The router prices its estimates (the cost ceiling) and the caller prices what providers report
with this same function.
"""

from __future__ import annotations

from uniwizard.config_types import BackendConfig
from uniwizard.types import Usage


def price(backend: BackendConfig, usage: Usage) -> float:
    """USD cost of ``usage`` at ``backend``'s prices."""
    return (
        usage.input_tokens * backend.cost_per_1k_input
        + usage.output_tokens * backend.cost_per_1k_output
    ) / 1000.0
