"""Tracker, checkpoint and curve-file guarantees a killed run relies on."""
from __future__ import annotations

import io
import json
import time

import pytest

from llmrl.checkpoint import CheckpointDir
from llmrl.tracking import CURVE_COLUMNS, Tracker, read_curve

LOCAL = {"backend": "local", "progress": False}


def tracker(tmp_path, **kw):
    return Tracker(tmp_path, LOCAL, {"method": "m", "env": "e"}, {}, **kw)


def test_points_are_on_disk_at_once_and_must_grow(tmp_path):
    t = tracker(tmp_path)
    t.log_point(env_steps=0, return_mean=1.0, return_std=0.0)
    assert read_curve(tmp_path)[0]["return_mean"] == 1.0  # written before the run ends
    t.log_point(env_steps=10, return_mean=2.0, return_std=0.5)
    with pytest.raises(ValueError, match="must increase"):
        t.log_point(env_steps=10, return_mean=3.0)
    with pytest.raises(ValueError, match="not told about"):
        t.log_point(env_steps=20, bogus=1)
    summary = t.finish("done")
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["best_return"] == 2.0 and on_disk["final_return"] == 2.0 and on_disk["n_points"] == 2


def test_torn_last_line_is_ignored(tmp_path):
    t = tracker(tmp_path)
    t.log_point(env_steps=0, return_mean=1.0)
    t.log_point(env_steps=5, return_mean=1.5)
    with open(tmp_path / "curve.csv", "a") as f:
        f.write("10,2.0")  # a process killed mid-write
    rows = read_curve(tmp_path)
    assert [r["env_steps"] for r in rows] == [0, 5]


def test_resume_drops_points_after_checkpoint(tmp_path):
    t = tracker(tmp_path)
    for s in (0, 10, 20, 30):
        t.log_point(env_steps=s, return_mean=float(s))
    resumed = tracker(tmp_path, resume_from_steps=20, wall_offset=12.0)
    assert [p["env_steps"] for p in resumed.points] == [0, 10, 20]
    assert [r["env_steps"] for r in read_curve(tmp_path)] == [0, 10, 20]
    assert resumed.wall_s >= 12.0
    resumed.log_point(env_steps=30, return_mean=31.0)
    assert read_curve(tmp_path)[-1]["return_mean"] == 31.0
    assert list(read_curve(tmp_path)[0]) == CURVE_COLUMNS


def test_checkpoint_swap_survives_a_kill_between_renames(tmp_path):
    ck = CheckpointDir(tmp_path)
    assert ck.load() is None
    ck.save(lambda d: (d / "model.bin").write_text("one"), {"env_steps": 100})
    ck.save(lambda d: (d / "model.bin").write_text("two"), {"env_steps": 200})
    loaded = ck.load()
    assert loaded.env_steps == 200 and (loaded.path / "model.bin").read_text() == "two"
    # simulate a kill after `checkpoint` -> `checkpoint.old` but before the new one was renamed in
    (tmp_path / "checkpoint").rename(tmp_path / "checkpoint.old")
    assert ck.load().env_steps == 200
    with pytest.raises(ValueError):
        ck.save(lambda d: None, {"no_steps": 1})


def test_step_counter_is_shared_through_copies_and_safe_across_threads():
    import copy
    import pickle
    import threading

    from llmrl.counting import StepCounter

    counter = StepCounter(5)
    assert copy.deepcopy(counter) is counter  # gymnasium deep-copies wrapper arguments
    restored = pickle.loads(pickle.dumps(counter))
    assert restored.steps == 5 and restored is not counter
    threads = [threading.Thread(target=lambda: [counter.add(1) for _ in range(20000)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.steps == 5 + 80000


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_status_line_redraws_on_a_terminal_and_is_silent_when_off():
    from types import SimpleNamespace

    from llmrl.status import StatusLine

    term = _Terminal()
    line = StatusLine("promptpo/cartpole/s0", stream=term, refresh_s=0.05)
    line.phase("round 2/5", expect_replies=4)
    line.reply(SimpleNamespace(cached=False, completion_tokens=120))
    line.usage(7, 0.0)
    line.repair("candidate 1, exception")
    line.steps(2500, {"return_mean": 41.5})
    time.sleep(0.2)  # the ticker redraws the elapsed time between events
    line.close()
    out = term.getvalue()
    assert "\r" in out and out.count("\n") <= 1  # redrawn in place, one line
    last = out.split("\r")[-1]
    for part in ("round 2/5", "replies 1/4", "repairs 1", "tok/s", "7 LLM calls $0.0000", "2,500 env steps", "return 41.5"):
        assert part in last, part

    quiet = io.StringIO()
    off = StatusLine("x", enabled=False, stream=quiet)
    off.phase("round 1/1", expect_replies=1)
    off.reply(SimpleNamespace(cached=True, completion_tokens=0))
    off.close()
    assert quiet.getvalue() == ""
