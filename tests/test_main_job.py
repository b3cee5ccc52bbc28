"""The README's main job, `python run.py` with no method or LLM chosen: PromptPO on cartpole,
2 rounds x 2 candidates, with the real local model (llm=local) started by the run. Whatever the
model writes, the run completes with a curve. In CI the model is fetched by the set-up."""
from __future__ import annotations

import json

from llmrl.tracking import read_curve
from tests.conftest import run_cli


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
