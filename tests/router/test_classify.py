from __future__ import annotations

import statistics
import time

import pytest

from router_svc.chain import build_chain
from router_svc.classify import Classification, Reason, classify
from router_svc.policy import parse_policy
from tests.router import helpers as h
from uniwizard.providers.tokens import estimate_task_tokens
from uniwizard.types import Attachment

SEEDS = [c for c in h.load_corpus() if c.raw.get("seed")]


def test_all_ten_seed_tasks_are_in_the_corpus() -> None:
    assert len(SEEDS) == 10
    assert [c.raw["text"].split("\n")[0][:25] for c in SEEDS] == [
        "Read the file notes/todo.",
        "What's the status of the ",
        "Review this pull request ",
        "Analyze the trade-offs be",
        "Generate the full CRUD bo",
        "Find every mention of the",
        "Who was the first emperor",
        "Summarize this article in",
        "Describe what is in this ",
        "Quick — one word: capital",
    ]


@pytest.mark.parametrize("case", SEEDS, ids=[c.label[:60] for c in SEEDS])
def test_seed_task_goes_to_expected_backend(case: h.Case) -> None:
    policy = h.policy()
    estimate = estimate_task_tokens(case.task)
    cls = classify(case.task, policy, estimate)
    decision = build_chain(
        case.task, cls, policy, h.BACKENDS, h.healthy(), estimate=estimate, now=0.0
    )
    print(case.label, "->", decision.backend, [str(r) for r in decision.reasons])
    assert cls.category == case.expected_category
    assert decision.backend == case.expected_backend


def test_treaty_document_is_really_about_40k_tokens() -> None:
    treaty = next(c for c in SEEDS if "treaty" in c.raw["text"])
    estimate = estimate_task_tokens(treaty.task)
    assert 40_000 <= estimate <= 41_000
    assert treaty.task.prompt.count("treaty") > 100


def test_reasons_explain_in_plain_words() -> None:
    p = h.policy()
    photo = Attachment("photo.jpg", "image/jpeg", b"\xff\xd8")
    cls = classify(h.make_task("Describe what is in this photo", attachments=(photo,)), p)
    assert cls.reasons == (Reason("multimodal", "attachment photo.jpg is image/jpeg"),)

    cls = classify(h.make_task("Find every mention of the treaty"), p, estimate=41_200)
    assert cls.reasons == (Reason("long_context", "estimated 41,200 input tokens > 6,000"),)

    cls = classify(h.make_task("Summarise my notes", private=True), p)
    assert cls.reasons == (Reason("private", "the task is marked private"),)

    cls = classify(h.make_task("Convert 5 miles to km", latency_budget_ms=800), p)
    assert cls.reasons == (Reason("quick", "latency budget 800 ms <= 3,000 ms"),)

    cls = classify(h.make_task("Write a haiku about autumn leaves"), p)
    assert cls == Classification("knowledge", (Reason("default", "no rule matched"),))

    cls = classify(h.make_task("Review this pull request diff for race conditions"), p)
    assert cls.category == "reasoning"
    assert cls.reasons[0].rule == "reasoning"
    assert cls.reasons[0].evidence.startswith("wording: ")
    for phrase in ("'review'", "'race conditions'", "'pull request'", "'diff'"):
        assert phrase in cls.reasons[0].evidence


def test_scoring_not_first_keyword_and_ties_go_to_policy_order() -> None:
    p = h.policy()
    # "review" (reasoning) appears, but summarising is the operation asked for
    cls = classify(h.make_task("Summarize the code review comments"), p)
    assert cls.category == "knowledge"
    assert cls.reasons[1] == Reason("knowledge", "score 2.5 beat reasoning 2")
    # equal scores: the earlier category in the policy wins, and the reason says so
    tie = parse_policy(
        "default: b\ncategories:\n"
        "  - {name: a, when: {keywords: [alpha]}, prefer: [x]}\n"
        "  - {name: b, when: {keywords: [beta]}, prefer: [y]}\n"
    )
    cls = classify(h.make_task("beta then alpha"), tie)
    assert cls.category == "a"
    assert cls.reasons[1].evidence == "tied with b at 1; a comes first in the policy"


def test_hard_evidence_beats_wording() -> None:
    p = h.policy()
    clip = Attachment("standup.mp3", "audio/mpeg", b"")
    assert classify(h.make_task("Summarize this", attachments=(clip,)), p).category == "multimodal"
    assert classify(h.make_task("Review my diff", private=True), p).category == "private"
    long = h.make_task("Summarize:\n\n" + h.build_document(7000))
    assert classify(long, p).category == "long_context"
    assert classify(h.make_task("Explain TCP", latency_budget_ms=500), p).category == "quick"
    # a latency budget that is not tight is no evidence
    assert classify(h.make_task("Explain TCP", latency_budget_ms=30_000), p).category == "knowledge"


def test_wording_reads_only_head_and_tail_of_a_long_prompt() -> None:
    p = h.policy()
    middle = "Please analyze and critique the architecture. " * 40
    text = "Summarize this for me:\n\n" + ("x " * 300) + middle + ("y " * 300)
    cls = classify(h.make_task(text), p, estimate=3000)
    assert cls.category == "knowledge"
    # an instruction at the end still counts (at the policy's tail weight)
    cls = classify(h.make_task(("z " * 400) + "\n\nWhich of these is a race condition?"), p, 3000)
    assert cls.category == "reasoning"
    assert cls.scores == (("reasoning", 1.0),)


def test_reasons_never_carry_the_prompt() -> None:
    p = h.policy()
    for case in h.load_corpus():
        cls = classify(case.task, p)
        for reason in cls.reasons:
            shown = reason.evidence
            assert len(shown) < 200, shown
            prompt = case.task.prompt
            if len(prompt) > 30:
                assert prompt.lower() not in shown.lower(), (case.label, shown)


def test_keyword_matching_is_whole_word_case_insensitive_with_stems() -> None:
    p = h.policy()
    assert classify(h.make_task("LIST THE FILES"), p).category == "simple"
    # "listen" is not "list", "reader" is not "read"
    assert classify(h.make_task("listen to the reader"), p).reasons[0].rule == "default"
    # stems: analy* matches analysing; hyphens split words like spaces
    cls = classify(h.make_task("analysing thread-safe trade offs"), p)
    assert cls.category == "reasoning"
    assert "'analysing'" in cls.reasons[0].evidence


def test_classify_is_fast() -> None:
    p = h.policy()
    tasks = [
        h.make_task("Analyze the trade-offs between event sourcing and CRUD for our service"),
        h.make_task("What's the status of the nightly backup job?"),
        h.make_task("Who was the first emperor of Rome?"),
    ]
    samples = []
    for _ in range(300):
        for task in tasks:
            start = time.perf_counter()
            classify(task, p)
            samples.append(time.perf_counter() - start)
    p50 = statistics.median(samples) * 1e6
    p99 = sorted(samples)[int(len(samples) * 0.99)] * 1e6
    print(f"classify(): p50 {p50:.1f} us, p99 {p99:.1f} us (one-line tasks, estimate included)")
    assert p50 < 500  # target is <= 100 us; the margin absorbs slow, shared CI machines
