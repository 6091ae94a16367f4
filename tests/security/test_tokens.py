"""Named tokens without a server: the tokens file, the check, the client name, the scope table."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection

from uniwizard.auth import (
    ALL_SCOPES,
    ANONYMOUS,
    CLIENT_METADATA,
    Authorizer,
    PermissionDenied,
    Principal,
    Scope,
    Unauthenticated,
    bearer,
    client_name,
)
from uniwizard.auth_grpc import load_authorizer
from uniwizard.config_types import Budget
from uniwizard.scopes import METHOD_SCOPES, OPEN_PREFIX, Unlisted, required_scope
from uniwizard.security import SecurityError
from uniwizard.tokens import (
    TokenFile,
    append_entry,
    entry_yaml,
    hash_token,
    new_token,
    parse_tokens,
    table,
)
from uniwizard.v1 import caller_pb2, registry_pb2, router_pb2
from uniwizard.yamlcheck import ConfigError

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdefgh"
DEFAULT = "default-token-0123456789abcd"


def tokens_yaml(*entries: tuple[str, str, str]) -> str:
    lines = ["tokens:"]
    for token, name, scopes in entries:
        lines += [f'  "{hash_token(token)}":', f"    name: {name}", f"    scopes: [{scopes}]"]
    return "\n".join(lines) + "\n"


def test_a_token_is_written_as_its_sha256_and_new_tokens_are_random() -> None:
    assert hash_token("abc") == "sha256:" + hashlib.sha256(b"abc").hexdigest()
    a, b = new_token(), new_token()
    assert a != b and a.startswith("uwz_") and len(a) >= 40


def test_the_file_gives_names_scopes_and_budgets() -> None:
    text = tokens_yaml((ALICE, "alice", "think, route"), (BOB, "bob", "admin"))
    text += f'  "{hash_token("carol-token-012345678")}":\n    name: carol\n    scopes: [think]\n'
    text += "    budget: {daily_usd: 2, monthly_usd: 40}\n"
    entries = parse_tokens(text, "tokens.yaml")
    assert [(e.principal.name, e.principal.scopes) for e in entries] == [
        ("alice", {Scope.THINK, Scope.ROUTE}),
        ("bob", {Scope.ADMIN}),
        ("carol", {Scope.THINK}),
    ]
    assert entries[2].principal.budget == Budget(daily_usd=2.0, monthly_usd=40.0)
    assert entries[0].principal.budget is None
    assert entries[0].digest == hashlib.sha256(ALICE.encode()).digest()


BAD_FILES = [
    ("", "tokens.yaml: the file is empty; it needs a 'tokens' mapping"),
    ("tokens:\n", "tokens.yaml:1: tokens: must be a mapping, got nothing"),
    ("tokenz: {}\n", "tokens.yaml:1: tokenz: unknown key 'tokenz' (allowed: tokens)"),
    (
        f'tokens:\n  "{ALICE}":\n    name: a\n    scopes: [think]\n',
        "tokens.yaml:2: tokens[0]: the key must be the token's hash, sha256:<64 hex digits>",
    ),
    (
        tokens_yaml((ALICE, "alice", "think")).replace("think", "thinking"),
        "tokens.yaml:4: tokens[0].scopes: unknown scope 'thinking' (known: route, think, admin,"
        " service)",
    ),
    (
        tokens_yaml((ALICE, "alice", "")),
        "tokens.yaml:4: tokens[0].scopes: needs at least one scope",
    ),
    (
        tokens_yaml((ALICE, "al ice", "think")),
        "tokens.yaml:3: tokens[0].name: 'al ice' is not a token name",
    ),
    (
        tokens_yaml((ALICE, "default", "think")),
        "tokens.yaml:3: tokens[0].name: 'default' is UNIWIZARD_TOKEN's name",
    ),
    (
        tokens_yaml((ALICE, "alice", "think"), (BOB, "alice", "route")),
        "tokens.yaml:5: tokens[1]: name 'alice' is taken by the entry on line 2",
    ),
    (
        tokens_yaml((ALICE, "alice", "think"), (ALICE, "bob", "route")),
        "tokens.yaml:5: tokens: the same token hash is listed twice",
    ),
    (
        f'tokens:\n  "{hash_token(ALICE)}":\n    scopes: [think]\n',
        "tokens.yaml:3: tokens[0].name: required key is missing",
    ),
    (
        tokens_yaml((ALICE, "alice", "think")) + "    budget: {daily_usd: 0}\n",
        "tokens.yaml:5: tokens[0].budget: needs daily_usd or monthly_usd above 0",
    ),
    (
        tokens_yaml((ALICE, "alice", "think")) + "    budget: {weekly_usd: 3}\n",
        "tokens.yaml:5: tokens[0].budget.weekly_usd: unknown key 'weekly_usd'",
    ),
    (
        tokens_yaml((ALICE, "alice", "think")) + "    token: abc\n",
        "tokens.yaml:5: tokens[0].token: unknown key 'token' (allowed: name, scopes, budget)",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_a_bad_tokens_file_is_one_line_naming_file_line_and_key_never_a_hash(
    text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_tokens(text, "tokens.yaml")
    assert str(err.value).startswith(message), str(err.value)
    assert not re.search("sha256:[0-9a-f]", str(err.value)) and ALICE not in str(err.value)
    assert hashlib.sha256(ALICE.encode()).hexdigest()[:16] not in str(err.value)


def test_the_check_names_the_principal_and_the_missing_scope() -> None:
    entries = parse_tokens(tokens_yaml((ALICE, "alice", "think"), (BOB, "bob", "admin")))
    auth = Authorizer(lambda: table(entries, DEFAULT))
    assert auth.authorize(ALICE, Scope.THINK).name == "alice"
    assert auth.authorize(ALICE, None).name == "alice"  # any valid token
    assert auth.authorize(DEFAULT, Scope.SERVICE) == Principal("default", ALL_SCOPES)
    with pytest.raises(PermissionDenied) as denied:
        auth.authorize(ALICE, Scope.ADMIN, "Registry.SetEnabled")
    assert str(denied.value) == (
        "token 'alice' lacks the 'admin' scope needed for Registry.SetEnabled (it has: think)"
    )
    for presented in (None, "", "nobody-0123456789abcdef", ALICE + "x", hash_token(ALICE)):
        with pytest.raises(Unauthenticated, match="missing or invalid bearer token"):
            auth.authorize(presented, Scope.THINK)
    assert auth.budget_of("alice") is None and auth.budget_of("nobody") is None


def test_with_no_token_configured_everyone_is_anonymous_with_every_scope() -> None:
    auth = load_authorizer({})
    assert not auth.enabled
    assert auth.authorize(None, Scope.ADMIN) is ANONYMOUS
    assert ANONYMOUS.name == "" and ANONYMOUS.scopes == ALL_SCOPES


def test_uniwizard_token_alone_is_default_with_every_scope() -> None:
    auth = load_authorizer({"UNIWIZARD_TOKEN": DEFAULT})
    assert auth.authorize(DEFAULT, Scope.ADMIN) == Principal("default", ALL_SCOPES)
    with pytest.raises(Unauthenticated):
        auth.authorize(ALICE, None)


def test_the_tokens_file_needs_the_services_own_token_and_may_not_repeat_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(tokens_yaml((ALICE, "alice", "think")))
    with pytest.raises(SecurityError, match="UNIWIZARD_TOKENS_FILE needs UNIWIZARD_TOKEN"):
        load_authorizer({"UNIWIZARD_TOKENS_FILE": str(path)})
    auth = load_authorizer({"UNIWIZARD_TOKENS_FILE": str(path), "UNIWIZARD_TOKEN": DEFAULT})
    assert auth.authorize(ALICE, Scope.THINK).name == "alice"
    assert auth.authorize(DEFAULT, Scope.ADMIN).name == "default"
    path.write_text(tokens_yaml((DEFAULT, "again", "think")))
    with pytest.raises(SecurityError, match="line 2 is UNIWIZARD_TOKEN's hash"):
        load_authorizer({"UNIWIZARD_TOKENS_FILE": str(path), "UNIWIZARD_TOKEN": DEFAULT})
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read: file not found"):
        load_authorizer(
            {"UNIWIZARD_TOKENS_FILE": str(tmp_path / "missing.yaml"), "UNIWIZARD_TOKEN": DEFAULT}
        )


def test_the_file_is_read_again_when_it_changes_and_a_bad_change_keeps_the_tokens_in_force(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(tokens_yaml((ALICE, "alice", "think")))
    now = [0.0]
    source = TokenFile(str(path), DEFAULT, clock=lambda: now[0])
    auth = Authorizer(source)
    assert auth.authorize(ALICE, Scope.THINK).name == "alice"
    path.write_text(tokens_yaml((BOB, "bob", "think")))
    now[0] = 0.5  # looked at no more than once a second
    assert auth.authorize(ALICE, Scope.THINK).name == "alice"
    now[0] = 1.5
    assert auth.authorize(BOB, Scope.THINK).name == "bob"
    with pytest.raises(Unauthenticated):  # removed from the file: refused
        auth.authorize(ALICE, Scope.THINK)
    caplog.set_level(logging.INFO)
    path.write_text(tokens_yaml((ALICE, "alice", "think"), (BOB, "alice", "think")))
    now[0] = 3.0
    assert auth.authorize(BOB, Scope.THINK).name == "bob"  # the tokens in force stay
    with pytest.raises(Unauthenticated):
        auth.authorize(ALICE, Scope.THINK)
    assert "rejected; the tokens in force stay" in caplog.text
    assert "name 'alice' is taken" in caplog.text
    assert "sha256" not in caplog.text and ALICE not in caplog.text and BOB not in caplog.text


def test_token_new_entries_append_to_a_file_that_stays_valid(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    budget = Budget(daily_usd=1.5)
    append_entry(str(path), entry_yaml(ALICE, "alice", frozenset({Scope.THINK}), budget))
    append_entry(str(path), entry_yaml(BOB, "bob", frozenset({Scope.ROUTE, Scope.THINK}), None))
    entries = parse_tokens(path.read_text(), str(path))
    assert [(e.principal.name, e.principal.budget) for e in entries] == [
        ("alice", budget),
        ("bob", None),
    ]
    assert path.stat().st_mode & 0o777 == 0o600  # only hashes, still its owner's alone
    before = path.read_text()
    with pytest.raises(ConfigError, match="name 'bob' is taken"):
        append_entry(str(path), entry_yaml(DEFAULT, "bob", frozenset({Scope.THINK}), None))
    assert path.read_text() == before  # nothing written
    (tmp_path / "flow.yaml").write_text("tokens: {}\n")
    with pytest.raises(ValueError, match="no 'tokens:' line to add under"):
        append_entry(str(tmp_path / "flow.yaml"), entry_yaml(BOB, "b", frozenset(ALL_SCOPES), None))


def test_bearer_reads_the_authorization_value() -> None:
    assert bearer(f"Bearer {ALICE}") == ALICE
    assert bearer(f"bearer   {ALICE} ") == ALICE
    assert bearer(f"Bearer {ALICE}".encode()) == ALICE
    for value in (None, "", "Bearer", "Bearer ", f"Basic {ALICE}", ALICE):
        assert bearer(value) is None


def test_only_a_service_principal_may_name_the_client_it_acts_for() -> None:
    thinker = Principal("alice", frozenset({Scope.THINK, Scope.ADMIN}))
    service = Principal("default", ALL_SCOPES)
    assert client_name(thinker, "bob") == "alice"  # a claim from a client is ignored
    assert client_name(thinker, None) == "alice"
    assert client_name(service, "alice") == "alice"
    assert client_name(service, "") == "default"
    with pytest.raises(ValueError, match=CLIENT_METADATA):
        client_name(service, "not a name\n")


def test_every_rpc_of_every_contract_has_its_scope_and_nothing_else_is_listed() -> None:
    methods = {
        f"/{service.full_name}/{method.name}"
        for module in (router_pb2, registry_pb2, caller_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    methods.add(f"/{reflection.SERVICE_NAME}/ServerReflectionInfo")
    assert set(METHOD_SCOPES) == methods
    health = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    assert OPEN_PREFIX == f"/{health}/"
    with pytest.raises(Unlisted, match="no scope assigned"):
        required_scope("/uniwizard.v1.Registry/DropEverything")
    assert required_scope("/uniwizard.v1.Registry/SetEnabled") is Scope.ADMIN
    assert required_scope("/uniwizard.v1.Router/Route") is Scope.ROUTE
    assert required_scope("/uniwizard.v1.Router/Dispatch") is Scope.THINK
    assert required_scope("/uniwizard.v1.Caller/Call") is Scope.SERVICE
