#!/usr/bin/env python3
"""Exit 0 when the gRPC service at ADDR answers grpc.health.v1 Check with SERVING, or, with
``--http``, when the HTTP edge at ADDR answers ``GET /health`` with 200 (over TLS, presenting the
container's certificate, when ``UNIWIZARD_TLS_CERT`` is set)."""

import os
import ssl
import sys
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from uniwizard.security import sync_channel  # the container's own TLS settings

args = [a for a in sys.argv[1:] if a != "--http"]
addr = args[0] if args else "127.0.0.1:50051"
if "--http" in sys.argv:
    cert, key, ca = (os.environ.get(f"UNIWIZARD_TLS_{k}") for k in ("CERT", "KEY", "CA"))
    ctx = None
    if cert and key:
        ctx = ssl.create_default_context(cafile=ca or None)
        ctx.check_hostname = False  # the certificate names the service, not 127.0.0.1
        ctx.load_cert_chain(cert, key)
    url = f"{'https' if ctx else 'http'}://{addr}/health"
    try:
        with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
            sys.exit(0 if resp.status == 200 else 1)
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        sys.exit(1)
try:
    with sync_channel(addr) as channel:
        resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    sys.exit(0 if resp.status == health_pb2.HealthCheckResponse.SERVING else 1)
except grpc.RpcError as exc:
    print(f"{addr}: {exc.code().name}", file=sys.stderr)
    sys.exit(1)
