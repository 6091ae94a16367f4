#!/usr/bin/env python3
"""Exit 0 when the gRPC service at ADDR answers grpc.health.v1 Check with SERVING."""

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from uniwizard.security import sync_channel  # the container's own TLS settings

addr = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
try:
    with sync_channel(addr) as channel:
        resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    sys.exit(0 if resp.status == health_pb2.HealthCheckResponse.SERVING else 1)
except grpc.RpcError as exc:
    print(f"{addr}: {exc.code().name}", file=sys.stderr)
    sys.exit(1)
