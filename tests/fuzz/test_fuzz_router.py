"""Fuzz routing: random tasks through token estimates, classification and chain building, and
random / mutated routing policies through the policy loader.

Contract: classification never raises on any Task and returns a category of the policy;
``build_chain`` never raises, never puts a non-private backend in a private task's chain, and
accounts for every candidate exactly once (in the chain or skipped, with a known reason).
``parse_policy`` raises only ``ConfigError``, whose message is one line starting with the path.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from router_svc.chain import SKIP_REASONS, build_chain
from router_svc.classify import classify
from router_svc.policy import Policy, load_policy, parse_policy
from uniwizard.config import ConfigError, load_config
from uniwizard.providers.tokens import estimate_task_tokens, estimate_tokens
from uniwizard.types import (
    Attachment,
    BackendHealth,
    BlindRequest,
    HealthState,
    Message,
    Role,
    Task,
    ToolCall,
    ToolDef,
)

# The profile registered in conftest.py ("ci" by default, HYPOTHESIS_PROFILE=deep to hunt),
# applied to these tests only.
FUZZ = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_config(ROOT / "configs" / "backends.yaml")
POLICY_TEXT = (ROOT / "configs" / "routing.yaml").read_text(encoding="utf-8")
POLICY = load_policy(ROOT / "configs" / "routing.yaml", CONFIG.backends)
BACKENDS = CONFIG.backends

WORDS = st.sampled_from(
    "review the diff summarize explain who was rename delete list file quick asap urgent "
    "boilerplate scaffold generate 12 files whole codebase 300-page analyze debug tl;dr "
    "analy* trade-offs what's write to notes.md /etc/hosts ./x.json yes or no the of a".split()
)
TEXT = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(WORDS, st.text(max_size=8)), max_size=40).map(" ".join),
    st.sampled_from(["", " ", "a" * 50_000, "word " * 20_000, "\ud800", "日本語" * 3000]),
)
MEDIA_TYPES = st.one_of(
    st.sampled_from(
        [
            "image/png",
            "IMAGE/JPEG",
            "audio/wav",
            "video/mp4",
            "text/markdown",
            "application/pdf",
            "",
            "/",
            "image",
            "text/plain; charset=utf-8",
        ]
    ),
    st.text(max_size=20),
)
ATTACHMENTS = st.builds(Attachment, st.text(max_size=80), MEDIA_TYPES, st.binary(max_size=64))
MESSAGES = st.builds(
    Message,
    role=st.sampled_from(list(Role)),
    text=TEXT,
    attachments=st.lists(ATTACHMENTS, max_size=2).map(tuple),
    tool_calls=st.lists(
        st.builds(ToolCall, st.text(max_size=5), st.text(max_size=5), st.text(max_size=20)),
        max_size=1,
    ).map(tuple),
)
NUMBERS = st.one_of(st.floats(), st.sampled_from([0.0, -1.0, 1e-9, 0.0001, 1e300]))
TASKS = st.builds(
    Task,
    request=st.builds(
        BlindRequest,
        messages=st.lists(MESSAGES, max_size=3).map(tuple),
        system_prompt=TEXT,
        tools=st.lists(
            st.builds(ToolDef, st.text(max_size=8), st.text(max_size=30), st.text(max_size=30)),
            max_size=2,
        ).map(tuple),
        max_output_tokens=st.integers(min_value=-(2**40), max_value=2**40),
        temperature=st.none() | st.floats(),
    ),
    private=st.booleans(),
    latency_budget_ms=st.integers(min_value=-(2**40), max_value=2**40),
    max_cost_usd=NUMBERS,
)
HEALTH = st.dictionaries(
    st.sampled_from(sorted(BACKENDS)),
    st.builds(
        BackendHealth,
        key=st.just("x"),
        state=st.sampled_from(list(HealthState)),
        reason=st.text(max_size=10),
        cooldown_until=st.one_of(st.floats(), st.floats(0, 2e9)),
        failures_in_window=st.integers(0, 10),
    ),
    max_size=6,
)


def _one_private_task() -> Task:
    return Task(BlindRequest((Message(Role.USER, "review this " * 3000),)), private=True)


@FUZZ
@given(task=TASKS, health=HEALTH, now=st.floats(0, 2e9))
@example(task=_one_private_task(), health={}, now=0.0)
@example(
    task=Task(BlindRequest((Message(Role.USER, "status"),))),
    health={"local": BackendHealth("local", HealthState.COOLING_DOWN, cooldown_until=math.inf)},
    now=1.0,
)
def test_classification_and_chain_never_raise(
    task: Task, health: dict[str, BackendHealth], now: float
) -> None:
    estimate = estimate_task_tokens(task)
    assert isinstance(estimate, int) and estimate >= 0
    result = classify(task, POLICY, estimate)
    assert result.category in POLICY.names
    assert result.reasons and all(r.evidence for r in result.reasons)
    decision = build_chain(task, result, POLICY, BACKENDS, health, estimate=estimate, now=now)
    assert decision.category == result.category
    assert decision.backend == (decision.chain[0] if decision.chain else None)
    assert len(set(decision.chain)) == len(decision.chain)
    skipped = [s.backend for s in decision.skipped]
    assert not set(skipped) & set(decision.chain)
    candidates = set(POLICY.rule(result.category).prefer) | set(BACKENDS)
    assert set(skipped) | set(decision.chain) == candidates
    assert all(s.reason in SKIP_REASONS and s.detail for s in decision.skipped)
    if task.private or POLICY.rule(result.category).private_only:
        assert all(BACKENDS[k].private for k in decision.chain)
    for key in decision.chain:
        modalities = BACKENDS[key].modalities
        assert all(a.modality in modalities for a in task.request.attachments())


@FUZZ
@given(text=st.text())
@example(text="\ud800\udfff")
def test_token_estimate_is_monotone_in_text(text: str) -> None:
    n = estimate_tokens(text)
    assert (n == 0) == (text == "")
    assert estimate_tokens(text + text) >= n


# --- policies --------------------------------------------------------------------------------


def _small_policy() -> str:
    """routing.yaml cut to its short categories (multimodal, private, quick): the same shapes,
    a fraction of the YAML to parse per example."""
    lines = POLICY_TEXT.splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if "- name: long_context" in line)
    quick = next(i for i, line in enumerate(lines) if "- name: quick" in line)
    text = "".join(lines[:cut] + lines[quick:]).replace("default: knowledge", "default: quick")
    parse_policy(text, "small", BACKENDS)  # valid to start with
    return text


LINES = _small_policy().splitlines(keepends=True)
_YAML_BITS = [
    "",
    " ",
    "  ",
    "- ",
    ": ",
    "{",
    "}",
    "[",
    "]",
    "&a ",
    "*a",
    "!!int ",
    "!!foo ",
    "'",
    '"',
    "\t",
    "#",
    "|",
    ">",
    "? ",
    ".nan",
    ".inf",
    "-1",
    "0",
    "1e9",
    "~",
    "\x85",
]


@st.composite
def mutated_policy(draw: st.DrawFn) -> str:
    lines = list(LINES)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "indent", "dedent", "insert", "replace", "dup"]))
        if op == "delete":
            del lines[i]
        elif op == "indent":
            lines[i] = "  " + lines[i]
        elif op == "dedent":
            lines[i] = lines[i][2:] if lines[i].startswith("  ") else lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        else:
            line = lines[i]
            j = draw(st.integers(0, len(line)))
            bit = draw(st.one_of(st.sampled_from(_YAML_BITS), st.text(max_size=4)))
            k = j if op == "insert" else min(len(line), j + draw(st.integers(0, 8)))
            lines[i] = line[:j] + bit + line[k:]
        if not lines:
            break
    return "".join(lines)


_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
RANDOM_POLICY = st.fixed_dictionaries(
    {},
    optional={
        "version": st.one_of(st.just(1), _VALUES),
        "default": st.one_of(st.sampled_from(["knowledge", "x"]), _VALUES),
        "wording": st.one_of(
            st.fixed_dictionaries(
                {}, optional={"head_chars": _VALUES, "tail_chars": _VALUES, "tail_weight": _VALUES}
            ),
            _VALUES,
        ),
        "categories": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["knowledge", "quick", "x"]) | _VALUES},
                optional={
                    "prefer": st.lists(st.sampled_from(sorted(BACKENDS)), max_size=3) | _VALUES,
                    "when": st.fixed_dictionaries(
                        {},
                        optional={
                            "keywords": st.lists(st.text(max_size=8) | _VALUES, max_size=3),
                            "patterns": st.lists(
                                st.sampled_from(["a+", "(", "x?", "\\b\\d", "[a-", "(?i)b"])
                                | _VALUES,
                                max_size=2,
                            ),
                            "media_types": _VALUES,
                            "private": _VALUES,
                            "min_input_tokens": _VALUES,
                            "max_latency_budget_ms": _VALUES,
                        },
                    ),
                    "private_only": _VALUES,
                },
            ),
            max_size=3,
        ),
    },
)


def _yaml(doc: object) -> str:
    import yaml

    return yaml.safe_dump(doc, allow_unicode=True)


POLICIES = st.one_of(mutated_policy(), RANDOM_POLICY.map(_yaml), st.text(max_size=60))
PATH = "configs/routing.yaml"


@FUZZ
@given(text=POLICIES)
@example(text="categories: " + "[" * 1500 + "]" * 1500)
@example(text="categories: &x [*x]\n")
@example(text="version: !!int x\n")
@example(text="version: !!bool maybe\n")
@example(text="version: !!timestamp x\n")
@example(text='"a\\nb": 1\n')
@example(
    text="version: 1\na: &a [x,x,x,x,x,x,x,x,x,x]\n"
    + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(7)
    )
)
def test_policy_loader_raises_only_config_error(text: str) -> None:
    try:
        policy = parse_policy(text, PATH, BACKENDS)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(PATH)
        assert "\n" not in message and "\r" not in message and message.isprintable()
        return
    assert isinstance(policy, Policy)
    assert policy.default in policy.names
    task = Task(BlindRequest((Message(Role.USER, "review this diff, then list the files"),)))
    assert classify(task, policy).category in policy.names
