"""scripts/critical_state_fidelity.py on the toy corridor whose only critical step is known
(step 10): the LLM's marks (a scripted server that names the gate) and StateMask's ranking both
find it, and randomising it costs far more return than randomising as many random steps."""
from __future__ import annotations

import json
import re
import subprocess
import sys

from llmrl.llm.scripted_server import Reply, ScriptedServer
from tests.conftest import REPO, cli_env, run_cli

LINE = re.compile(r"^(\d+): (.*)$", re.MULTILINE)


def _names_the_gate(request, index):
    text = request["messages"][0]["content"]
    items = [{"step": int(s), "reason": "action 0 here ends the episode", "action": 1, "reward_action": 1.0,
              "reward_taken": 0.5} for s, rest in LINE.findall(text) if "at_gate=1" in rest]
    return Reply(content="The gate decides.\n```json\n" + json.dumps({"critical_steps": items}) + "\n```")


def _fidelity(*args):
    return subprocess.run([sys.executable, str(REPO / "scripts" / "critical_state_fidelity.py"), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600, env=cli_env())


def test_fidelity_finds_the_known_critical_step_for_the_llm_and_statemask(tmp_path):
    run = tmp_path / "run"
    run_cli("method=ultra_ra", "env=toy_critical_step", "llm=none", "method.pretrain_steps=4096", "method.refine=false",
            "logger.progress=false", f"hydra.run.dir={run}", check=True)
    no_llm = _fidelity(str(run), "--sources", "llm", "--out", str(tmp_path / "x"))
    assert no_llm.returncode == 2 and "choose one for the llm source with --llm NAME" in no_llm.stderr
    out = tmp_path / "fidelity"
    with ScriptedServer(responder=_names_the_gate) as server:
        proc = _fidelity(str(run), "--episodes", "8", "--reps", "4", "--mask-steps", "8192", "--mask-bonus", "0.1",
                         "--llm", "vllm", "--set", f"llm.api_base={server.api_base}", "llm.model=openai/scripted",
                         f"llm.cache_dir={tmp_path / 'cache'}", "--out", str(out))
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert len(server.completions) == 8  # one window per 20-step episode
    result = json.loads((out / "fidelity.json").read_text())
    meta, rows = result["meta"], {(r["source"], r["fraction"]): r for r in result["rows"]}
    assert meta["returns"] == [20.0] * 8 and meta["deterministic_replay"]
    assert meta["sources"]["llm"]["marked_per_episode"] == [1] * 8 and meta["sources"]["llm"]["calls"] == 8
    for fraction in (0.01, 0.05, 0.1):
        rand = rows[("random", fraction)]
        assert rand["steps_randomised"] == (2.0 if fraction == 0.1 else 1.0)
        for source in ("llm", "statemask"):
            row = rows[(source, fraction)]
            # step 10 randomised: action 0 half the time, the episode then ends at 11 (expected drop 4.5)
            assert 2.5 < row["drop_mean"] < 6.5 and row["drop_low"] > rand["drop_mean"], (source, fraction, row, rand)
    # at 10% the LLM marked one step where K is two: compared with one random step as well
    assert rows[("random@llm", 0.1)]["steps_randomised"] == 1.0
    assert "| 5% | statemask | 1.0 |" in (out / "fidelity.md").read_text()
    assert (out / "llm").is_dir() and list((out / "llm").glob("window_*.md"))
    # the report shows the measurement beside the runs it was made on
    from llmrl.analysis.report import build

    report = build([run], tmp_path / "report", {}, fidelity=[out / "fidelity.json"], reps=100).read_text()
    assert "## Are the critical states critical? toy_critical_step, seed 0" in report
    assert "| 1% | llm | 1.0 |" in report
