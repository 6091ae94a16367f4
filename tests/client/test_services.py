"""The registry and caller clients against the real services."""

from __future__ import annotations

import socket

import pytest

from tests.stack import Stack
from uniwizard_client import (
    BackendRouter,
    CallerClient,
    RegistryClient,
    RouterError,
    RouterUnavailable,
)

ROME = "Who was the first emperor of Rome?"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_registry_and_caller_clients(threaded_stack: Stack) -> None:
    with RegistryClient(threaded_stack.registry.target) as registry:
        listed = registry.list_backends()
        assert listed.config_path == threaded_stack.config_path
        assert [b.key for b in listed.backends] == list(threaded_stack.config.backends)
        gpt = {b.key: b for b in listed.backends}["gpt"]
        configured = threaded_stack.config.backends["gpt"]
        assert (gpt.provider, gpt.model, gpt.url) == (
            configured.provider,
            configured.model,
            configured.url,
        )
        assert gpt.max_context == configured.max_context and gpt.cost_per_1k_input > 0
        assert gpt.last_probe_ok is None and gpt.routable  # probes are off in the test stack

        disabled = registry.set_enabled("gpt", False, by="ops", reason="maintenance")
        assert (disabled.state, disabled.disabled_by, disabled.disabled_reason) == (
            "disabled",
            "ops",
            "maintenance",
        )
        assert registry.set_enabled("gpt", True).state != "disabled"
        with pytest.raises(RouterError) as err:
            registry.set_enabled("nope", False)
        assert not isinstance(err.value, RouterUnavailable) and "nope" in err.value.details

        reloaded = registry.reload()
        assert reloaded.ok and (reloaded.added, reloaded.changed, reloaded.removed) == ((), (), ())

    with BackendRouter(threaded_stack.router.target, deadline=20) as router:
        answered = router.dispatch(ROME)
    with CallerClient(threaded_stack.caller.target) as caller:
        usage = caller.usage()
    assert usage.total.backend == "total" and usage.total.attempts == 1
    assert [(u.backend, u.successes) for u in usage.backends] == [("gpt", 1)]
    assert usage.total.cost_usd == pytest.approx(answered.cost_usd)


def test_unreachable_services_name_themselves() -> None:
    target = f"127.0.0.1:{_closed_port()}"
    with RegistryClient(target, deadline=5) as registry, pytest.raises(RouterUnavailable) as err:
        registry.list_backends()
    assert (err.value.service, err.value.target, err.value.status) == (
        "registry",
        target,
        "UNAVAILABLE",
    )
    assert err.value.connect_failed
    with CallerClient(target, deadline=5) as caller, pytest.raises(RouterUnavailable) as err:
        caller.usage()
    assert (err.value.service, err.value.target) == ("caller", target)
