"""The README's main jobs with the real local model (llm=local) started by the run: `python run.py`
with no method or LLM chosen (PromptPO on cartpole, 2 rounds x 2 candidates), and `make run`'s
comparison preset with its report and headline. Whatever the model writes, the runs complete with
curves. In CI the model is fetched by the set-up."""
from __future__ import annotations

import json
import subprocess
import sys

from llmrl.tracking import read_curve
from tests.conftest import REPO, cli_env, run_cli


def test_default_command_runs_promptpo_with_the_local_model_and_replays_identically(tmp_path):
    run_dir = tmp_path / "main"
    args = [f"llm.cache_dir={tmp_path / 'cache'}", "llm.max_tokens=384", "logger.progress=false"]
    run_cli(f"hydra.run.dir={run_dir}", *args, check=True, timeout=1800)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "done" and summary["method"] == "promptpo" and summary["llm"] == "local"
    assert summary["llm_usage"]["calls"] >= 4 and summary["llm_usage"]["cost_usd"] == 0.0
    curve = read_curve(run_dir)
    assert 1 <= len(curve) <= 2 and all(p["llm_tokens"] > 0 for p in curve)
    assert (run_dir / "promptpo" / "round_01" / "prompt.md").is_file()
    assert len((run_dir / "transcript.jsonl").read_text().splitlines()) >= 4

    # the same command again, replay only: no model server, not one request, the same run byte for byte
    replay = tmp_path / "replay"
    run_cli(f"hydra.run.dir={replay}", *args, "llm.cache=replay", check=True, timeout=600)
    again = json.loads((replay / "summary.json").read_text())
    assert again["llm_usage"]["http_calls"] == 0 and again["llm_usage"]["cache_hits"] == summary["llm_usage"]["calls"]
    assert not (replay / "llm_server.log").exists()
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]  # noqa: E731
    assert strip(read_curve(replay)) == strip(curve)
    files = sorted(p.relative_to(run_dir) for p in (run_dir / "promptpo").rglob("*") if p.suffix in (".json", ".py", ".md")
                   and p.name != "summary.json")
    assert files and all((replay / f).read_bytes() == (run_dir / f).read_bytes() for f in files)
    assert (replay / "best_policy.py").read_bytes() == (run_dir / "best_policy.py").read_bytes()


def test_make_run_preset_compares_promptpo_with_ppo_reports_and_reruns(tmp_path):
    """`make run`'s three steps on a smaller budget (1 round; PPO 5k steps): the sweep, the report,
    the headline; then the sweep again, which reports the finished runs instead of failing."""
    sweep = tmp_path / "quickstart"
    args = ["-m", "experiment=quickstart", "method_overrides.promptpo.rounds=1", "+method_overrides.ppo.total_steps=5000",
            "method_overrides.ppo.eval_every=2500", f"++llm.cache_dir={tmp_path / 'cache'}", "++llm.max_tokens=384",
            f"hydra.sweep.dir={sweep}"]  # ++: PPO's llm (none) has no such keys, PromptPO's has
    first = run_cli(*args, check=True, timeout=1800)
    summaries = {json.loads(p.read_text())["method"]: json.loads(p.read_text()) for p in sweep.rglob("summary.json")
                 if (p.parent / "config.yaml").is_file()}  # run summaries, not PromptPO's per-round ones
    assert set(summaries) == {"promptpo", "ppo"} and all(s["status"] == "done" for s in summaries.values())
    usage = summaries["promptpo"]["llm_usage"]
    assert summaries["promptpo"]["llm"] == "local" and usage["calls"] >= 4
    assert usage["http_calls"] < usage["calls"]  # the round's 4 candidates went out as one request
    assert "round 1/1 started, waiting for 4 replies" in first.stderr  # the status line, one line per event here

    report = subprocess.run([sys.executable, "scripts/report.py", str(sweep), "--out", str(tmp_path / "report"),
                             "--reps", "200"], cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert report.returncode == 0, report.stderr[-2000:]
    text = (tmp_path / "report" / "REPORT.md").read_text()
    assert "promptpo" in text and "ppo" in text and list((tmp_path / "report" / "figures").glob("*.png"))
    head = subprocess.run([sys.executable, "scripts/headline.py", str(sweep), "--target", "195", "--report",
                           str(tmp_path / "report")], cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert head.returncode == 0, head.stderr
    lines = head.stdout.splitlines()
    assert any(x.strip().startswith("promptpo") and " on cartpole" in x and "LLM calls (local)" in x for x in lines)
    assert any(x.strip().startswith("ppo") and " on cartpole" in x and "target " in x for x in lines)
    assert "REPORT.md" in head.stdout

    again = run_cli(*args, timeout=600)  # make run a second time: nothing to redo, no error
    assert again.returncode == 0, again.stderr[-2000:]
    assert (again.stdout + again.stderr).count("is already complete; nothing to resume") == 2
