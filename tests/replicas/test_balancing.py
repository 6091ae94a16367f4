"""Targets, the balancing service config and the connection-age setting (uniwizard/balancing.py)."""

from __future__ import annotations

import json

import pytest

from uniwizard.balancing import (
    CONNECTION_AGE_ENV,
    BalancingError,
    balanced_options,
    connection_age_options,
    normalize_target,
    service_config,
)
from uniwizard.net import SERVICE_NAMES, channel_options


@pytest.mark.parametrize(
    ("given", "dialled"),
    [
        ("127.0.0.1:50053", "127.0.0.1:50053"),
        ("  caller:50053 ", "caller:50053"),  # a name may resolve to every replica
        ("uniwizard-caller.uniwizard.svc.cluster.local:50053", None),
        ("[::1]:50053", "[::1]:50053"),
        ("dns:///caller:50053", "dns:///caller:50053"),
        ("DNS:///caller:50053", "dns:///caller:50053"),
        ("dns://10.0.0.10:53/caller:50053", "dns://10.0.0.10:53/caller:50053"),
        ("dns:caller:50053", "dns:caller:50053"),
        ("ipv4:10.0.0.1:1,10.0.0.2:2", "ipv4:10.0.0.1:1,10.0.0.2:2"),
        ("ipv6:[::1]:1,[fe80::1]:2", "ipv6:[::1]:1,[fe80::1]:2"),
        ("127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", "ipv4:127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"),
        ("127.0.0.1:1, 127.0.0.1:2", "ipv4:127.0.0.1:1,127.0.0.1:2"),
        ("[::1]:1,[::1]:2", "ipv6:[::1]:1,[::1]:2"),
        ("unix:/run/uniwizard/caller.sock", "unix:/run/uniwizard/caller.sock"),
        ("unix-abstract:uniwizard", "unix-abstract:uniwizard"),
    ],
)
def test_targets_gRPC_resolves(given: str, dialled: str | None) -> None:
    assert normalize_target(given) == (dialled or given.strip())


def test_normalizing_twice_changes_nothing() -> None:
    for given in ("127.0.0.1:1,127.0.0.1:2", "dns:///caller:50053", "[::1]:1,[::1]:2"):
        once = normalize_target(given)
        assert normalize_target(once) == once


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("", "--caller: empty; give host:port, dns:///host:port"),
        ("caller", "--caller: 'caller': no port (host:port)"),
        ("caller:0", "--caller: 'caller:0': the port must be 1..65535, got '0'"),
        ("caller:65536", "the port must be 1..65535, got '65536'"),
        ("caller:http", "the port must be 1..65535, got 'http'"),
        ("cal ler:1", "--caller: 'cal ler:1': 'cal ler' is not a host name or address"),
        ("http://caller:50053", "--caller: 'http://caller:50053': unknown scheme 'http'"),
        ("::1:50053", "--caller: '::1:50053': put an IPv6 address in brackets: [ADDR]:PORT"),
        ("[::1]50053", "an IPv6 address is [ADDR]:PORT"),
        ("[nope]:1", "'nope' is not an IPv6 address"),
        ("dns:///caller", "--caller: 'caller': no port (host:port)"),
        ("dns:///", "--caller: an empty address in the list"),
        (
            "caller-a:1,caller-b:1",
            "--caller: 'caller-a:1' in a list must be an IP address (gRPC resolves one name per "
            "target): give the addresses, or one name that resolves to every replica "
            "(dns:///NAME:PORT)",
        ),
        ("127.0.0.1:1,[::1]:2", "--caller: a list mixes IPv4 and IPv6 addresses"),
        ("127.0.0.1:1,,127.0.0.1:2", "--caller: an empty address in the list"),
        ("127.0.0.1:1,127.0.0.1:1", "--caller: '127.0.0.1:1' is listed twice"),
        ("ipv4:caller:1", "every address after ipv4: must be an ipv4 address"),
        ("ipv4:[::1]:1", "every address after ipv4: must be an ipv4 address"),
        ("ipv6:127.0.0.1:1", "every address after ipv6: must be an ipv6 address"),
        ("ipv4:10.0.0.1:1,10.0.0.1:1", "'10.0.0.1:1' is listed twice"),
        ("unix:", "--caller: 'unix:': no socket path after unix:"),
    ],
)
def test_what_is_not_a_target_is_one_clear_error(given: str, says: str) -> None:
    with pytest.raises(BalancingError) as err:
        normalize_target(given, "--caller")
    message = str(err.value)
    assert says in message and message.isprintable()
    assert isinstance(err.value, ValueError)


def test_the_service_config_balances_round_robin_and_health_checks_the_service() -> None:
    assert service_config("uniwizard.v1.Caller") == {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": "uniwizard.v1.Caller"},
    }
    assert service_config(None) == {"loadBalancingConfig": [{"round_robin": {}}]}
    ((name, value),) = balanced_options("uniwizard.v1.Router")
    assert name == "grpc.service_config"
    assert json.loads(value) == service_config("uniwizard.v1.Router")


def test_each_service_channel_health_checks_that_service_by_its_full_name() -> None:
    assert SERVICE_NAMES == {
        "registry": "uniwizard.v1.Registry",
        "router": "uniwizard.v1.Router",
        "caller": "uniwizard.v1.Caller",
    }
    for service, full_name in SERVICE_NAMES.items():
        options = dict(channel_options(service))
        assert json.loads(options["grpc.service_config"]) == service_config(full_name)
        assert options["grpc.max_receive_message_length"] > 0
    assert "grpc.service_config" not in dict(channel_options(None))


@pytest.mark.parametrize(
    ("value", "options"),
    [
        (None, []),
        ("", []),
        ("300", [("grpc.max_connection_age_ms", 300_000)]),
        (" 0.25 ", [("grpc.max_connection_age_ms", 250)]),
    ],
)
def test_connection_age(value: str | None, options: list[tuple[str, int]]) -> None:
    env = {} if value is None else {CONNECTION_AGE_ENV: value}
    assert connection_age_options(env) == options


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("soon", "UNIWIZARD_MAX_CONNECTION_AGE_S='soon': must be a number of seconds"),
        ("0", "UNIWIZARD_MAX_CONNECTION_AGE_S='0': must be more than 0 and at most 2147483"),
        ("-5", "must be more than 0"),
        ("nan", "must be more than 0"),
        ("inf", "must be more than 0"),
        ("3000000", "at most 2147483 seconds"),
    ],
)
def test_a_bad_connection_age_names_the_variable(value: str, says: str) -> None:
    with pytest.raises(BalancingError) as err:
        connection_age_options({CONNECTION_AGE_ENV: value})
    assert says in str(err.value)
