"""Service addresses and client channels."""

from __future__ import annotations

import os

import grpc

from uniwizard import telemetry
from uniwizard.limits import Limits
from uniwizard.security import client_interceptors, load_security

DEFAULT_ADDRS = {
    "registry": "127.0.0.1:50051",
    "router": "127.0.0.1:50052",
    "caller": "127.0.0.1:50053",
}
_MAX = Limits().max_message_bytes
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", _MAX),
    ("grpc.max_send_message_length", _MAX),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5_000),
]


def address(service: str) -> str:
    """The address of ``service`` (registry, router, caller) from UNIWIZARD_<NAME>_ADDR."""
    return os.environ.get(f"UNIWIZARD_{service.upper()}_ADDR") or DEFAULT_ADDRS[service]


def aio_channel(target: str, client_service: str) -> grpc.aio.Channel:
    """An aio channel from one of our services: traced when telemetry is on, with this process's
    TLS settings and bearer token (see ``uniwizard.security``)."""
    security = load_security()
    interceptors = [*telemetry.client_interceptors(client_service), *client_interceptors(security)]
    creds = security.channel_credentials()
    if creds is not None:
        return grpc.aio.secure_channel(
            target, creds, options=CHANNEL_OPTIONS, interceptors=interceptors
        )
    return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS, interceptors=interceptors)


def data_dir() -> str:
    """Where state lives (ledger, operator state, generated configs): not in the repo."""
    explicit = os.environ.get("UNIWIZARD_DATA_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(base, "uniwizard")
