"""The README's main job, `python run.py` with no method or LLM chosen: PromptPO on cartpole,
2 rounds x 2 candidates, with the real local model (llm=local) started by the run. Whatever the
model writes, the run completes with a curve. In CI the model is fetched by the set-up."""
from __future__ import annotations

import json

from llmrl.tracking import read_curve
from tests.conftest import run_cli


def test_default_command_runs_promptpo_with_the_local_model(tmp_path):
    run_dir = tmp_path / "main"
    run_cli(f"hydra.run.dir={run_dir}", f"llm.cache_dir={tmp_path / 'cache'}", "llm.max_tokens=384",
            "logger.progress=false", check=True, timeout=1800)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "done" and summary["method"] == "promptpo" and summary["llm"] == "local"
    assert summary["llm_usage"]["calls"] >= 4 and summary["llm_usage"]["cost_usd"] == 0.0
    curve = read_curve(run_dir)
    assert 1 <= len(curve) <= 2 and all(p["llm_tokens"] > 0 for p in curve)
    assert (run_dir / "promptpo" / "round_01" / "prompt.md").is_file()
    assert len((run_dir / "transcript.jsonl").read_text().splitlines()) >= 4
