"""Service addresses and client channels: over the network, or in-process to a component that
runs in the same process."""

from __future__ import annotations

import os

import grpc

from uniwizard import telemetry
from uniwizard.inproc import InProcessChannel, LocalServer
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


DEFAULT_HTTP_ADDR = "127.0.0.1:50080"


def address(service: str) -> str:
    """The address of ``service`` (registry, router, caller) from UNIWIZARD_<NAME>_ADDR."""
    return os.environ.get(f"UNIWIZARD_{service.upper()}_ADDR") or DEFAULT_ADDRS[service]


def http_address() -> str:
    """The HTTP edge's address, from UNIWIZARD_HTTP_ADDR."""
    return os.environ.get("UNIWIZARD_HTTP_ADDR") or DEFAULT_HTTP_ADDR


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


# How one component reaches another: its address, or a channel already made (in-process).
Link = str | grpc.aio.Channel


def link_channel(link: Link, client_service: str) -> grpc.aio.Channel:
    """The channel for a link: a network channel to an address, or the channel given."""
    return aio_channel(link, client_service) if isinstance(link, str) else link


def local_channel(server: LocalServer, client_service: str) -> InProcessChannel:
    """An in-process channel from ``client_service`` to a component in this process. Traced like
    a network channel (the same client interceptor makes the client span); no bearer token, which
    is for the network (see ``uniwizard.server.ServiceHost``)."""
    return InProcessChannel(server, client_service, telemetry.client_interceptors(client_service))


def data_dir() -> str:
    """Where state lives (ledger, operator state, generated configs): not in the repo."""
    explicit = os.environ.get("UNIWIZARD_DATA_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(base, "uniwizard")
