"""The edge's settings, from the environment; a bad value is one error naming the variable.

* ``UNIWIZARD_HTTP_ADDR``: where the edge listens (default ``127.0.0.1:50080``);
* ``UNIWIZARD_ROUTER_ADDR``: the router it calls, as for every client;
* ``UNIWIZARD_HTTP_IMAGE_HOSTS``: hosts whose http(s) image URLs the edge fetches,
  comma-separated, ``*`` for any; unset: none (images as data URLs only);
* ``UNIWIZARD_HTTP_DEADLINE_S``: the deadline of one chat completion, a stream included
  (default 600 s, at most ``UNIWIZARD_MAX_DEADLINE_S``);
* ``UNIWIZARD_MAX_MESSAGE_BYTES``: the largest request body (413 above it), as for gRPC;
* ``UNIWIZARD_MAX_ATTACHMENT_BYTES``: the largest image fetched from a URL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from uniwizard.limits import Limits, LimitsError, load_limits
from uniwizard.net import DEFAULT_HTTP_ADDR

ADDR_VAR = "UNIWIZARD_HTTP_ADDR"
IMAGE_HOSTS_VAR = "UNIWIZARD_HTTP_IMAGE_HOSTS"
DEADLINE_VAR = "UNIWIZARD_HTTP_DEADLINE_S"
ANY_HOST = "*"


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    address: str = DEFAULT_HTTP_ADDR
    image_hosts: frozenset[str] = frozenset()  # lower-case host names; "*": any
    deadline_s: float = 600.0
    max_body_bytes: int = Limits().max_message_bytes
    max_image_bytes: int = Limits().max_attachment_bytes
    fetch_timeout_s: float = 10.0

    @property
    def fetches_images(self) -> bool:
        return bool(self.image_hosts)

    def image_host_allowed(self, host: str) -> bool:
        return ANY_HOST in self.image_hosts or host.lower() in self.image_hosts


def http_address(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get(ADDR_VAR) or DEFAULT_HTTP_ADDR  # as uniwizard.net.http_address


def load_edge_config(env: Mapping[str, str] | None = None) -> EdgeConfig:
    """Raises ``LimitsError`` naming the variable when a value cannot be used."""
    env = os.environ if env is None else env
    limits = load_limits(env)
    hosts = frozenset(
        h.strip().lower() for h in env.get(IMAGE_HOSTS_VAR, "").split(",") if h.strip()
    )
    raw = env.get(DEADLINE_VAR, "")
    deadline = 600.0
    if raw:
        try:
            deadline = float(raw)
        except ValueError:
            raise LimitsError(f"{DEADLINE_VAR}={raw!r}: must be a number of seconds") from None
        if deadline <= 0:
            raise LimitsError(f"{DEADLINE_VAR}={raw!r}: must be positive")
    return EdgeConfig(
        address=http_address(env),
        image_hosts=hosts,
        deadline_s=min(deadline, limits.max_deadline_s),
        max_body_bytes=limits.max_message_bytes,
        max_image_bytes=limits.max_attachment_bytes,
    )
