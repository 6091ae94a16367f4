"""Token authentication and TLS (with a CA made by the test) on every service, end to end."""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.stack import ROOT, running_stack, task
from uniwizard.convert import task_to_pb
from uniwizard.security import SecurityError, check_listen, load_security
from uniwizard.v1 import (
    caller_pb2,
    caller_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
)
from uniwizard_client import AsyncBackendRouter

TOKEN = "test-token-0123456789abcdef"
ROME = "Who was the first emperor of Rome?"


def make_pki(tmp: Path) -> dict[str, Path]:
    """A CA with a service certificate for 127.0.0.1/localhost, and a self-signed outsider."""
    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def sign(subject: str, key: Any, issuer: x509.Name, issuer_key: Any, ca: bool) -> bytes:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    def pem(key: Any) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    ca_key, svc_key, other_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    files = {
        "ca": sign("uniwizard test CA", ca_key, name("uniwizard test CA"), ca_key, True),
        "cert": sign("uniwizard service", svc_key, name("uniwizard test CA"), ca_key, False),
        "key": pem(svc_key),
        "other_cert": sign("outsider", other_key, name("outsider"), other_key, False),
        "other_key": pem(other_key),
    }
    paths = {}
    for key, data in files.items():
        paths[key] = tmp / f"{key}.pem"
        paths[key].write_bytes(data)
    return paths


def protected_calls(ch: grpc.aio.Channel) -> dict[str, Callable[..., Awaitable[Any]]]:
    return {
        "registry": lambda **kw: registry_pb2_grpc.RegistryStub(ch).ListBackends(
            registry_pb2.ListBackendsRequest(), timeout=5, **kw
        ),
        "router": lambda **kw: router_pb2_grpc.RouterStub(ch).Route(
            router_pb2.RouteRequest(task=task_to_pb(task("hi"))), timeout=5, **kw
        ),
        "caller": lambda **kw: caller_pb2_grpc.CallerStub(ch).Usage(
            caller_pb2.UsageRequest(), timeout=5, **kw
        ),
    }


async def test_no_token_is_unauthenticated_on_every_service_and_health_stays_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("UNIWIZARD_TOKEN", TOKEN)
    async with running_stack(tmp_path) as stack:
        # Our own clients (router → caller → registry, the tests' channels) carry the token.
        result = await stack.dispatch(task(ROME))
        assert result.text
        for service, host in (
            ("registry", stack.registry),
            ("router", stack.router),
            ("caller", stack.caller),
        ):
            async with grpc.aio.insecure_channel(host.target) as ch:
                call = protected_calls(ch)[service]
                for metadata in ((), (("authorization", "Bearer wrong-token-0123456789"),)):
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await call(metadata=metadata)
                    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, service
                    assert "bearer token" in (err.value.details() or "")
                await call(metadata=(("authorization", f"Bearer {TOKEN}"),))
                health = await health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
                assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert "bearer token" in caplog.text
    assert TOKEN not in caplog.text and "wrong-token" not in caplog.text


async def test_mutual_tls_end_to_end_with_a_test_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = make_pki(tmp_path)
    monkeypatch.setenv("UNIWIZARD_TLS_CERT", str(pki["cert"]))
    monkeypatch.setenv("UNIWIZARD_TLS_KEY", str(pki["key"]))
    monkeypatch.setenv("UNIWIZARD_TLS_CA", str(pki["ca"]))
    async with running_stack(tmp_path) as stack:
        result = await stack.dispatch(task(ROME))  # router → caller → registry over mTLS
        assert result.text and result.backend == "gpt"
        target = stack.router.target
        # The Evennia client stub takes the same settings.
        client = AsyncBackendRouter(target, deadline=20)
        try:
            assert await client.call_with_fallback(ROME)
        finally:
            await client.close()
        # Plaintext is refused.
        async with grpc.aio.insecure_channel(target) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await protected_calls(ch)["router"]()
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        ca, cert, key = (pki[k].read_bytes() for k in ("ca", "cert", "key"))
        # TLS without a client certificate is refused (mutual TLS).
        async with grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(ca)) as ch:
            with pytest.raises(grpc.aio.AioRpcError):
                await protected_calls(ch)["router"]()
        # A client certificate from another CA is refused.
        outsider = grpc.ssl_channel_credentials(
            ca, pki["other_key"].read_bytes(), pki["other_cert"].read_bytes()
        )
        async with grpc.aio.secure_channel(target, outsider) as ch:
            with pytest.raises(grpc.aio.AioRpcError):
                await protected_calls(ch)["router"]()
        # Our CA's client certificate works.
        async with grpc.aio.secure_channel(
            target, grpc.ssl_channel_credentials(ca, key, cert)
        ) as ch:
            decision = await protected_calls(ch)["router"]()
            assert decision.category


def test_security_settings_are_validated(tmp_path: Path) -> None:
    with pytest.raises(SecurityError, match="at least 16 characters"):
        load_security({"UNIWIZARD_TOKEN": "short"})
    with pytest.raises(SecurityError, match="UNIWIZARD_TOKEN_FILE=/nonexistent: cannot read"):
        load_security({"UNIWIZARD_TOKEN_FILE": "/nonexistent"})
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    assert load_security({"UNIWIZARD_TOKEN_FILE": str(token_file)}).token == TOKEN
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(SecurityError, match="must be set together"):
        load_security({"UNIWIZARD_TLS_CERT": str(cert)})


def test_non_loopback_without_token_or_tls_is_refused() -> None:
    bare = load_security({})
    check_listen("127.0.0.1:50051", bare)
    check_listen("[::1]:50051", bare)
    check_listen("localhost:50051", bare)
    with pytest.raises(SecurityError, match=r"refusing to listen on 0\.0\.0\.0:50051"):
        check_listen("0.0.0.0:50051", bare)
    check_listen("0.0.0.0:50051", load_security({"UNIWIZARD_TOKEN": TOKEN}))
    check_listen("0.0.0.0:50051", load_security({"UNIWIZARD_ALLOW_INSECURE": "1"}))


def test_a_service_asked_to_listen_on_all_interfaces_without_protection_exits_2(
    tmp_path: Path,
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "router_svc", "--address", "0.0.0.0:0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "UNIWIZARD_DATA_DIR": str(tmp_path)},
    )
    assert proc.returncode == 2
    assert "refusing to listen on 0.0.0.0:0" in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_the_cli_sends_the_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import os

    monkeypatch.setenv("UNIWIZARD_TOKEN", TOKEN)
    async with running_stack(tmp_path) as stack:

        async def cli(env: dict[str, str]) -> tuple[int, str]:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "uniwizard.cli",
                "route",
                "--json",
                ROME,
                cwd=ROOT,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            out, _ = await proc.communicate()
            assert proc.returncode is not None
            return proc.returncode, out.decode()

        env = dict(os.environ, UNIWIZARD_ROUTER_ADDR=stack.router.target)
        code, out = await cli(env)
        assert code == 0, out
        env["UNIWIZARD_TOKEN"] = "not-the-right-token-0123"
        code, out = await cli(env)
        assert code == 1 and "UNAUTHENTICATED" in out and "not-the-right" not in out
