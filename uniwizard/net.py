"""Service addresses and client channels."""

from __future__ import annotations

import os

import grpc

from uniwizard import telemetry

DEFAULT_ADDRS = {
    "registry": "127.0.0.1:50051",
    "router": "127.0.0.1:50052",
    "caller": "127.0.0.1:50053",
}
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5_000),
]


def address(service: str) -> str:
    """The address of ``service`` (registry, router, caller) from UNIWIZARD_<NAME>_ADDR."""
    return os.environ.get(f"UNIWIZARD_{service.upper()}_ADDR") or DEFAULT_ADDRS[service]


def aio_channel(target: str, client_service: str) -> grpc.aio.Channel:
    """An aio channel from one of our services (traced when telemetry is on)."""
    return grpc.aio.insecure_channel(
        target,
        options=CHANNEL_OPTIONS,
        interceptors=telemetry.client_interceptors(client_service),
    )


def data_dir() -> str:
    """Where state lives (ledger, operator state, generated configs): not in the repo."""
    explicit = os.environ.get("UNIWIZARD_DATA_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(base, "uniwizard")
