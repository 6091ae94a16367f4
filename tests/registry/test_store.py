from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from registry_svc.book import HealthBook
from registry_svc.clock import FakeClock
from registry_svc.store import OperatorState, OperatorStore, OperatorStoreError
from uniwizard.types import HealthState

from .conftest import make_config


def test_missing_file_is_empty(tmp_path: Path) -> None:
    store = OperatorStore(tmp_path / "operator.json")
    assert store.load() == {}
    assert store.recovered_from is None


def test_round_trip(tmp_path: Path) -> None:
    store = OperatorStore(tmp_path / "state" / "operator.json")  # directory is created
    states = {
        "claude": OperatorState(True, "alice", "billing — paused", 1_700_000_000.5),
        "grok": OperatorState(False, "bob", "", 1_700_000_001.0),
    }
    store.save(states)
    assert OperatorStore(store.path).load() == states
    doc = json.loads(store.path.read_text(encoding="utf-8"))
    assert doc["version"] == 1 and set(doc["backends"]) == {"claude", "grok"}
    store.save({})
    assert store.load() == {}


def test_atomic_write_leaves_no_temp_and_uses_replace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "operator.json"
    store = OperatorStore(path)
    store.save({"a": OperatorState(True, "x", "", 1.0)})
    replaced: list[tuple[str, str]] = []
    fsynced: list[int] = []
    real_replace, real_fsync = os.replace, os.fsync

    def spy_replace(src: str, dst: str) -> None:
        # At the moment of the swap the new content is complete in the temp file
        # and the old file is still intact.
        assert json.loads(Path(src).read_text())["backends"]["b"]["by"] == "y"
        assert "a" in json.loads(path.read_text())["backends"]
        replaced.append((str(src), str(dst)))
        real_replace(src, dst)

    def spy_fsync(fd: int) -> None:
        fsynced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "replace", spy_replace)
    monkeypatch.setattr(os, "fsync", spy_fsync)
    store.save({"b": OperatorState(True, "y", "", 2.0)})
    assert len(replaced) == 1 and replaced[0][1] == str(path)
    assert Path(replaced[0][0]).parent == tmp_path
    assert fsynced  # file (and directory) synced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["operator.json"]


def test_failed_write_keeps_old_file_and_names_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "operator.json"
    store = OperatorStore(path)
    store.save({"a": OperatorState(True, "x", "", 1.0)})

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OperatorStoreError, match=str(path)):
        store.save({"b": OperatorState(True, "y", "", 2.0)})
    monkeypatch.undo()
    assert set(store.load()) == {"a"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["operator.json"]


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        '{"version": 99, "backends": {}}',
        '{"version": 1, "backends": []}',
        '{"version": 1, "backends": {"a": {"disabled": "yes", "by": "", "reason": "", "at": 1}}}',
        '{"version": 1, "backends": {"a": {"disabled": true, "by": "", "reason": ""}}}',
        b"\xff\xfe\x00garbage",
    ],
)
def test_corrupt_file_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str | bytes
) -> None:
    path = tmp_path / "operator.json"
    raw = content if isinstance(content, bytes) else content.encode()
    path.write_bytes(raw)
    store = OperatorStore(path)
    with caplog.at_level(logging.WARNING, logger="registry_svc.store"):
        assert store.load() == {}
    assert not path.exists()
    [aside] = list(tmp_path.glob("operator.json.corrupt-*"))
    assert aside.read_bytes() == raw  # nothing lost
    assert store.recovered_from is not None
    assert str(path) in store.recovered_from and str(aside) in store.recovered_from
    assert str(path) in caplog.text
    # Starting empty, the next save writes a fresh valid file; the corrupt copy stays.
    store.save({"a": OperatorState(True, "x", "", 1.0)})
    assert set(OperatorStore(path).load()) == {"a"}
    assert aside.exists()


def test_two_corruptions_in_the_same_second_keep_both(tmp_path: Path) -> None:
    path = tmp_path / "operator.json"
    store = OperatorStore(path)
    path.write_text("one")
    store.load()
    path.write_text("two")
    store.load()
    asides = sorted(p.read_text() for p in tmp_path.glob("operator.json.corrupt-*"))
    assert asides == ["one", "two"]


def test_unreadable_path_raises_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "operator.json"
    path.mkdir()  # a directory where the file should be: reading fails with an OSError
    with pytest.raises(OperatorStoreError, match=str(path)):
        OperatorStore(path).load()


def test_operator_state_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "operator.json"
    configs = {"claude": make_config("claude"), "local": make_config("local")}
    clock = FakeClock()
    store = OperatorStore(path)
    book = HealthBook(configs, clock, {}, operator_state=store.load())
    book.disable("claude", "alice", "over budget")
    store.save(book.operator_state())

    # "Restart": a new store and book on the same path.
    clock2 = FakeClock(start=1_800_000_000.0)
    book2 = HealthBook(configs, clock2, {}, operator_state=OperatorStore(path).load())
    h = book2.get("claude")
    assert h.state is HealthState.DISABLED
    assert (h.disabled_by, h.disabled_reason) == ("alice", "over budget")
    assert book2.get("local").state is HealthState.UNKNOWN

    # Or applied after construction.
    book3 = HealthBook(configs, clock2, {})
    [changed] = book3.apply_operator_state(OperatorStore(path).load())
    assert changed.key == "claude" and changed.state is HealthState.DISABLED

    book2.enable("claude", "bob")
    OperatorStore(path).save(book2.operator_state())
    book4 = HealthBook(configs, clock2, {}, operator_state=OperatorStore(path).load())
    assert book4.get("claude").state is HealthState.UNKNOWN
