"""PromptPO end to end through run.py, with a scripted LLM over real HTTP and the real sandbox."""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from llmrl.llm.scripted_server import Reply, ScriptedServer
from llmrl.tracking import read_curve
from promptpo.extract import first_python_block
from tests.conftest import popen_cli, run_cli

WEAK = "class CartPolePolicy:\n    def act(self, obs):\n        return 0\n"
GOOD = ("class CartPolePolicy:\n    def act(self, obs):\n"
        "        return 1 if obs.pole_angle + 0.5 * obs.pole_angular_velocity > 0 else 0\n")
BROKEN = "class CartPolePolicy:\n    def act(self, obs):\n        return helper(obs)\n\ndef helper(obs):\n    return obs.no_such_field\n"
FEEDBACK = ("class Feedback:\n    def summarize_trajectory(self, traj):\n"
            "        return f\"{len(traj)} steps, final angle {traj[-1].pole_angle:.3f}\"\n")
FEEDBACK_PROMPT, REPAIR_PROMPT, REFLECTION_PROMPT = "Write a class named Feedback", "failed during a", "Answer in 3-4 sentences"


def fenced(code: str) -> str:
    return f"Here is the policy.\n\n```python\n{code}```\n"


class CartpoleScript:
    """Round 1: candidate A crashes (then repaired into the weak policy), candidate B is weak.
    Round 2: one candidate is good. Round 3: weak again (the best stays round 2)."""

    def __init__(self):
        self.policy_calls = 0
        self.prompts: list[str] = []

    def __call__(self, request, index):
        text = request["messages"][-1]["content"]
        if FEEDBACK_PROMPT in text:
            return Reply(content=fenced(FEEDBACK))
        if REPAIR_PROMPT in text:
            return Reply(content=fenced(WEAK))
        if REFLECTION_PROMPT in text:
            return Reply(content="The weak policy always pushes left; follow the pole's lean instead.")
        self.prompts.append(text)
        self.policy_calls += 1
        rnd = (self.policy_calls - 1) // 2 + 1
        if rnd == 1:
            return Reply(content=fenced(BROKEN) if self.policy_calls == 1 else fenced(WEAK))
        if rnd == 2:
            return Reply(content=fenced(GOOD) if self.policy_calls == 3 else "I cannot write code today.")
        return Reply(content=fenced(WEAK))


def promptpo_args(server, tmp_path, run_dir, *extra):
    return ["method=promptpo", "env=cartpole", "llm=vllm", f"llm.api_base={server.api_base}", "llm.model=openai/scripted",
            f"llm.cache_dir={tmp_path / 'cache'}", "llm.concurrency=1", "method.rounds=3", "method.n_candidates=2",
            "method.episodes_per_candidate=2", "method.max_repairs=2", "env.eval_episodes=2", "logger.progress=false",
            f"hydra.run.dir={run_dir}", *extra]


def test_first_python_block():
    assert first_python_block("text\n```python\nx = 1\n```\nmore ```python\ny=2\n```") == "x = 1\n"
    assert first_python_block("```\nz = 3\n```") == "z = 3\n"
    assert first_python_block("no code here") is None


def test_three_rounds_on_cartpole(tmp_path):
    script = CartpoleScript()
    run_dir = tmp_path / "run"
    with ScriptedServer(responder=script) as server:
        args = [a if a != "logger.progress=false" else "logger.progress=true" for a in promptpo_args(server, tmp_path, run_dir)]
        proc = run_cli(*args, check=True)
    # not a terminal: the status line is one plain line per event (no redraws, no ETA from env steps)
    err = proc.stderr
    assert "\r" not in err and "step/s" not in err
    for line in ("/cartpole/s0] round 1/3 started, waiting for 2 replies", "reply 2/2 (", "round 2/3: reflection",
                 "repair 1: candidate 0, exception", "curve point at", "LLM calls $0.0000"):
        assert line in err, line
    assert "replies 2/2 | repairs 1 |" in err and "env steps | return" in err
    curve = read_curve(run_dir)
    assert [p["round"] for p in curve] == [1, 2, 3]
    steps = [p["env_steps"] for p in curve]
    assert all(b > a for a, b in zip(steps, steps[1:]))
    # round 1: both candidates run (one after a repair), the weak policy scores 2 x ~9 steps
    assert curve[0]["candidates_ok"] == 2 and curve[0]["repairs"] == 1
    # round 2: the good policy wins (500 per episode); round 3 is weak, the best stays round 2
    assert curve[1]["train_return"] == 500.0 and curve[1]["return_mean"] == 500.0
    assert curve[2]["train_return"] < 50 and curve[2]["return_mean"] == 500.0
    assert curve[1]["repairs"] == 1  # the reply without code is a recorded failure, then repaired
    assert all(p["llm_calls"] > 0 for p in curve) and curve[-1]["llm_calls"] > curve[0]["llm_calls"]
    # the first prompt as the reference builds it: contexts, starter code, the objective over the horizon
    first_prompt = script.prompts[0]
    for part in ("Observation context: ", "Implementation details: ", "CartPoleRewardFunction: ", "class CartPolePolicy:",
                 "from observations import CartPoleObservation", "over 500 timesteps", "step by step"):
        assert part in first_prompt, part
    assert "learn" not in first_prompt  # no invitation to learn across episodes (the object still persists)
    # round k+1's prompt: the first prompt, the reflection on round k's winner, then every earlier winner with
    # its returns and the Feedback summaries of its episodes (the observations it saw)
    assert script.prompts[2].startswith(first_prompt.rstrip()) and "Attempt 1 generated policy:" in script.prompts[2]
    assert WEAK.strip().splitlines()[1].strip() in script.prompts[2] and "Reflection on the previous policy" in script.prompts[2]
    r1 = run_dir / "promptpo" / "round_01"
    won = json.loads((r1 / "summary.json").read_text())["winner"]
    lengths = json.loads(sorted((r1 / f"candidate_{won:02d}").glob("attempt_*.json"))[-1].read_text())["lengths"]
    assert all(f"{n} steps, final angle" in script.prompts[2] for n in lengths)  # one summary per episode, its length
    assert "Attempt 2 generated policy:" in script.prompts[4] and "[500, 500]" in script.prompts[4]
    assert "follow the pole's lean" in script.prompts[4]
    assert "best policy generated so far" not in script.prompts[4]  # the reference marks it from 10 rounds on
    # artifacts: every candidate's code, result and repair chain; the best policy standalone
    r1 = run_dir / "promptpo" / "round_01" / "candidate_00"
    assert (r1 / "attempt_00.py").read_text() == BROKEN and (r1 / "attempt_01.py").read_text() == WEAK
    first = json.loads((r1 / "attempt_00.json").read_text())
    assert first["error"]["kind"] == "exception" and "no_such_field" in first["error"]["message"]
    assert "line 6, in helper" in first["error"]["traceback"]
    no_code = json.loads((run_dir / "promptpo" / "round_02" / "candidate_01" / "attempt_00.json").read_text())
    assert no_code["error"]["kind"] == "no_code"
    assert GOOD in (run_dir / "best_policy.py").read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "done" and summary["best_round"] == 2 and summary["sandbox"]["mode"] == "bwrap"
    transcript = (run_dir / "transcript.jsonl").read_text().splitlines()
    assert any("write a policy in Python" in json.loads(x)["messages"][-1]["content"] for x in transcript)
    # per-round figures beside the curve, against env_steps: valid-code rate, repairs, candidate returns
    rounds = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["env_steps"] for r in rounds] == [p["env_steps"] for p in curve]
    assert [r["promptpo/valid_code_rate"] for r in rounds] == [1.0, 1.0, 1.0] and rounds[1]["promptpo/repairs"] == 1
    assert [r["promptpo/first_attempt_ok_rate"] for r in rounds] == [0.5, 0.5, 1.0]
    assert 500.0 in rounds[1]["promptpo/candidate_returns"]


PLANNER = """from collections import deque
import math


class NoiseWorldBoard0Policy:
    def act(self, obs):
        n = math.isqrt(len(obs.board))
        scale = n - 1
        start = (round(obs.agent_row * scale), round(obs.agent_col * scale))
        goal = (round(obs.goal_row * scale), round(obs.goal_col * scale))
        moves = [(-1, 0), (1, 0), (0, -1), (0, 1)]
        prev, queue = {start: None}, deque([start])
        while queue:
            cell = queue.popleft()
            if cell == goal:
                break
            for m, (dr, dc) in enumerate(moves):
                nxt = (cell[0] + dr, cell[1] + dc)
                if 0 <= nxt[0] < n and 0 <= nxt[1] < n and nxt not in prev and obs.board[nxt[0] * n + nxt[1]] not in (3, 5):
                    prev[nxt] = (cell, m)
                    queue.append(nxt)
        cell, move = goal, 1
        while prev.get(cell) is not None:
            cell, move = prev[cell]
        return move
"""


def test_noise_world_rounds_pick_the_higher_return(tmp_path):
    stay = "class NoiseWorldBoard0Policy:\n    def act(self, obs):\n        return 0\n"
    calls = {"n": 0}

    def responder(request, index):
        text = request["messages"][-1]["content"]
        if REFLECTION_PROMPT in text:
            return Reply(content="Plan a path around the cells that end the episode.")
        calls["n"] += 1
        return Reply(content=fenced(PLANNER if calls["n"] % 2 == 0 else stay))

    run_dir = tmp_path / "nw"
    with ScriptedServer(responder=responder) as server:
        run_cli(*[a.replace("env=cartpole", "env=noise_world_board_0") for a in promptpo_args(server, tmp_path, run_dir)],
                "method.feedback=false", check=True)
    curve = read_curve(run_dir)
    assert [p["round"] for p in curve] == [1, 2, 3]
    for r in (1, 2, 3):
        folder = run_dir / "promptpo" / f"round_{r:02d}"
        returns = [sum(json.loads((folder / f"candidate_{i:02d}" / "attempt_00.json").read_text())["returns"]) for i in (0, 1)]
        winner = json.loads((folder / "summary.json").read_text())["winner"]
        assert winner == returns.index(max(returns))  # NoiseWorld ranks by mean return (the first of equals), as the reference
    assert "deque" in (run_dir / "best_policy.py").read_text()  # the planner reaches the goal, staying never does
    assert curve[-1]["success_rate"] > 0


def _by_content(request, index):
    """Replies that depend only on the request (its round, its draw's seed), so a killed run that
    asks again gets what an uninterrupted run gets."""
    text = request["messages"][-1]["content"]
    if FEEDBACK_PROMPT in text:
        return Reply(content=fenced(FEEDBACK), delay_s=0.3)
    if REPAIR_PROMPT in text or REFLECTION_PROMPT in text:
        return Reply(content=fenced(WEAK) if REPAIR_PROMPT in text else "Follow the pole.", delay_s=0.3)
    good = text.count("generated policy:") == 1 and request["seed"] % 2 == 0
    return Reply(content=fenced(GOOD if good else BROKEN if request["seed"] % 3 == 0 else WEAK), delay_s=0.3)


def test_killed_run_resumes_from_the_last_round_exactly(tmp_path):
    """Killed after its first round and resumed, the run writes the uninterrupted run's curve."""
    run_dir = tmp_path / "run"
    with ScriptedServer(responder=_by_content) as server:
        args = promptpo_args(server, tmp_path, run_dir)
        proc = popen_cli(*args)
        deadline = time.time() + 300
        try:
            while time.time() < deadline and len(read_curve(run_dir)) < 1:
                assert proc.poll() is None, proc.stderr.read()[-2000:]
                time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        done_rounds = len(read_curve(run_dir))
        assert 1 <= done_rounds < 3
        run_cli(*args, "resume=true", check=True)
        whole = tmp_path / "whole"
        run_cli(*promptpo_args(server, tmp_path, whole), f"llm.cache_dir={tmp_path / 'other_cache'}", check=True)
    curve = read_curve(run_dir)
    assert [p["round"] for p in curve] == [1, 2, 3]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "done"
    assert _without_wall(curve) == _without_wall(read_curve(whole))


def _slow(script, request, index):
    reply = script(request, index)
    reply.delay_s = 0.3
    return reply


def test_evaluate_policy_script(tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO, cli_env

    policy = tmp_path / "policy.py"
    policy.write_text(GOOD)
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "evaluate_policy.py"), str(policy), "env=cartpole",
                           "+episodes=3"], cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("return 500.0000") == 3 and "(sandbox: bwrap)" in proc.stdout
    policy.write_text(BROKEN)
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "evaluate_policy.py"), str(policy), "env=cartpole"],
                          cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "no_such_field" in proc.stderr


# ---- every number stands on independent, replayable draws -----------------------------------------
def _draw_responder(request, index):
    """A model whose answer depends on its sampling seed, as a real one does: the code names the
    seed it was drawn with, and its quality follows the seed's parity."""
    text = request["messages"][-1]["content"]
    if REFLECTION_PROMPT in text:
        return Reply(content="Lean the cart under the pole.")
    seed = request.get("seed")
    return Reply(content=fenced(f"# drawn with seed {seed}\n" + (GOOD if seed % 2 == 0 else WEAK)))


def _candidates(run_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): p.read_text() for p in sorted((run_dir / "promptpo").rglob("attempt_*.py"))}


def _without_wall(rows):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]


def test_seeds_are_independent_draws_and_a_rerun_replays_exactly(tmp_path):
    args = ["method.rounds=2", "method.feedback=false", "experiment_name=draws"]
    with ScriptedServer(responder=_draw_responder) as server:
        sent = {}
        for name, seed in (("seed0", 0), ("seed1", 1), ("seed0_again", 0)):
            before = len(server.completions)
            run_cli(*promptpo_args(server, tmp_path, tmp_path / name, *args, f"seed={seed}"), check=True)
            sent[name] = [r["json"] for r in server.completions[before:]]
    # the same round-1 prompt, yet seed 1 asked the model again, with seeds of its own, and got other code
    first_prompt = lambda reqs: [r for r in reqs if "write a policy in Python" in r["messages"][-1]["content"]][0]["messages"]  # noqa: E731
    assert first_prompt(sent["seed0"]) == first_prompt(sent["seed1"])
    assert sent["seed1"] and {r["seed"] for r in sent["seed0"]}.isdisjoint({r["seed"] for r in sent["seed1"]})
    a, b = _candidates(tmp_path / "seed0"), _candidates(tmp_path / "seed1")
    assert a.keys() == b.keys() and all(a[k] != b[k] for k in a)
    # the same command again: not one request, the identical curve and the identical candidates
    assert sent["seed0_again"] == []
    assert _without_wall(read_curve(tmp_path / "seed0_again")) == _without_wall(read_curve(tmp_path / "seed0"))
    assert _candidates(tmp_path / "seed0_again") == a


def test_repairs_are_draws_of_their_candidate_and_replay_identically(tmp_path):
    """Every round-1 candidate is the same broken code, so every repair prompt is identical; only
    the first repair to arrive is answered with the good policy. Each repair is a draw of its own
    candidate, so a replay gives each candidate its own answer again, and the repairs wait for the
    one LLM slot like every other request."""
    answers = {"repairs": 0}

    def responder(request, index):
        text = request["messages"][-1]["content"]
        if FEEDBACK_PROMPT in text:
            return Reply(content=fenced(FEEDBACK), delay_s=0.1)
        if REPAIR_PROMPT in text:
            answers["repairs"] += 1
            return Reply(content=fenced(GOOD if answers["repairs"] == 1 else WEAK), delay_s=0.2)
        if REFLECTION_PROMPT in text:
            return Reply(content="Follow the pole.")
        return Reply(content=fenced(BROKEN), delay_s=0.1)

    extra = ["method.rounds=1", "method.n_candidates=4", "method.max_repairs=1", "method.feedback=true"]
    with ScriptedServer(responder=responder) as server:
        run_cli(*promptpo_args(server, tmp_path, tmp_path / "original", *extra), check=True)
        assert server.max_in_flight == 1 and answers["repairs"] == 4  # llm.concurrency=1 holds for repairs too
        sent = len(server.requests)
        run_cli(*promptpo_args(server, tmp_path, tmp_path / "replay", *extra, "llm.cache=replay"), check=True)
        assert len(server.requests) == sent
    original, replay = read_curve(tmp_path / "original"), read_curve(tmp_path / "replay")
    assert original[0]["train_return"] == 500.0 and original[0]["repairs"] == 4
    assert _without_wall(replay) == _without_wall(original)
    assert _candidates(tmp_path / "replay") == _candidates(tmp_path / "original")


def test_generated_code_sees_no_secret_and_no_secret_reaches_an_artifact(tmp_path):
    """Secrets planted where a careless sandbox would show them ($HOME/.netrc, the LLM cache,
    another run's directory; all outside /tmp, which the sandbox replaces anyway) stay out of
    reach of generated code that tries to read them and to send them into the next prompt."""
    import os
    import shutil
    import subprocess
    import sys

    from tests.conftest import REPO, cli_env

    secret = "SECRET-" + os.urandom(8).hex()
    root = REPO / f".pytest-secret-{os.getpid()}"
    home, cache, other = root / "home", root / "cache", root / "runs" / "other" / "seed_0"
    for folder in (home, cache, other):
        folder.mkdir(parents=True)
    (home / ".netrc").write_text(f"machine api.wandb.ai login me password {secret}\n")
    (cache / "secret.json").write_text(json.dumps({"api_key": secret}))
    (other / "summary.json").write_text(json.dumps({"note": secret}))
    snoop = f"""import os
class CartPolePolicy:
    def __init__(self):
        seen = ['uid=%d' % os.getuid(), 'root=%s' % sorted(os.listdir('/'))]
        for path in ({str(home / '.netrc')!r}, {str(cache / 'secret.json')!r}, {str(other / 'summary.json')!r},
                     '/etc/shadow', '/root/.netrc'):
            try:
                seen.append(path + ': ' + open(path).read())
            except OSError as exc:
                seen.append(path + ': ' + type(exc).__name__)
        for path in ('/root', {str(root)!r}):
            try:
                seen.append(path + ': ' + str(os.listdir(path)))
            except OSError as exc:
                seen.append(path + ': ' + type(exc).__name__)
        print(seen)
        raise RuntimeError(' | '.join(seen))       # what it read would go into the repair prompt
    def act(self, obs):
        return 0
"""

    def responder(request, index):
        if REPAIR_PROMPT in request["messages"][-1]["content"]:
            return Reply(content=fenced(WEAK))
        return Reply(content=fenced(snoop))

    run_dir = root / "runs" / "this" / "seed_0"
    try:
        with ScriptedServer(responder=responder) as server:
            args = promptpo_args(server, tmp_path, run_dir, "method.rounds=1", "method.n_candidates=1",
                                 "method.feedback=false", "method.reflection=false", f"llm.cache_dir={cache}")
            proc = subprocess.run([sys.executable, str(REPO / "run.py"), *args], cwd=REPO, capture_output=True, text=True,
                                  timeout=600, env={**cli_env(), "HOME": str(home)})
        assert proc.returncode == 0, proc.stderr[-3000:]
        first = json.loads((run_dir / "promptpo" / "round_01" / "candidate_00" / "attempt_00.json").read_text())
        message = first["error"]["message"]
        assert int(message.split("uid=")[1].split(" ")[0]) not in (0, os.getuid())
        for path in (home / ".netrc", cache / "secret.json", other / "summary.json", "/etc/shadow", "/root/.netrc"):
            assert f"{path}: FileNotFoundError" in message or f"{path}: PermissionError" in message, (path, message)
        assert f"{root}: FileNotFoundError" in message
        # not one byte of the secret in anything the run wrote (transcript, prompts, candidates, summaries)
        leaks = [p for p in run_dir.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
        assert leaks == [] and json.loads((run_dir / "summary.json").read_text())["status"] == "done"
        assert "write a policy in Python" in (run_dir / "transcript.jsonl").read_text()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_best_earlier_attempt_is_marked_from_ten_rounds_on_and_meta_world_ranks_by_success():
    from types import SimpleNamespace

    from promptpo.method import PromptPO

    method = PromptPO(rounds=12, n_candidates=1, episodes_per_candidate=2)
    method.ctx = SimpleNamespace(spec=SimpleNamespace(rank_by="return", has_success=False))
    entry = lambda r, ret: {"round": r, "code": "", "returns": [ret, ret], "successes": None, "mean": ret}  # noqa: E731
    history = [entry(r, 5.0 if r in (3, 7) else 1.0) for r in range(1, 10)]
    assert not any(e["is_best"] for e in method._history_view({"history": history}))  # 9 attempts: no marker
    history.append(entry(10, 2.0))
    assert [e["round"] for e in method._history_view({"history": history}) if e["is_best"]] == [3]  # the first of equals
    method.ctx = SimpleNamespace(spec=SimpleNamespace(rank_by="success", has_success=True))
    low_return_high_success = {"returns": [1.0], "successes": [1.0]}
    assert method._score(low_return_high_success) > method._score({"returns": [500.0], "successes": [0.0]})


def test_a_feedback_class_that_fails_later_is_repaired_and_the_repair_prompt_carries_the_contexts(tmp_path):
    """The Feedback class works on round 1's short episodes and breaks on round 2's long ones; it is
    repaired from its error, and the repaired class summarises round 2 and later rounds."""
    fragile = ("class Feedback:\n    def summarize_trajectory(self, traj):\n"
               "        return f'{len(traj)} short steps' if len(traj) < 100 else traj[10**6]\n")
    sent = {"feedback_repair": [], "policy_repair": []}

    def responder(request, index):
        text = request["messages"][-1]["content"]
        if "The Feedback class below failed" in text:
            sent["feedback_repair"].append(text)
            return Reply(content=fenced(FEEDBACK))
        if FEEDBACK_PROMPT in text:
            return Reply(content=fenced(fragile))
        if REPAIR_PROMPT in text:
            sent["policy_repair"].append(text)
            return Reply(content=fenced(WEAK))
        if REFLECTION_PROMPT in text:
            return Reply(content="Keep the pole up.")
        return Reply(content=fenced(WEAK if "generated policy:" not in text else GOOD))

    run_dir = tmp_path / "run"
    with ScriptedServer(responder=responder) as server:
        run_cli(*promptpo_args(server, tmp_path, run_dir, "method.n_candidates=1"), check=True)
    assert len(sent["feedback_repair"]) == 1 and "IndexError" in sent["feedback_repair"][0]
    assert "Observation context: " in sent["feedback_repair"][0] and "traj[10**6]" in sent["feedback_repair"][0]
    round3 = (run_dir / "promptpo" / "round_03" / "prompt.md").read_text()
    assert "short steps" in round3.split("Attempt 2 generated policy:")[0]  # round 1's summaries, by the first class
    assert "500 steps, final angle" in round3.split("Attempt 2 generated policy:")[1]  # round 2's, by the repaired one
    assert (run_dir / "promptpo" / "feedback" / "Feedback_round02.py").read_text() == FEEDBACK


def test_the_repair_prompt_carries_the_contexts(tmp_path):
    from promptpo.prompts import render

    text = render("repair.md.j2", observation_source="class XObservation: ...", action_context="Discrete(2)",
                  reward_title="XRewardFunction", reward_source="def reward(...): ...", starter_code="class XPolicy: ...",
                  horizon=500, episodes=5, code="broken", error="NameError: y", traceback="line 1", output="",
                  class_name="XPolicy")
    for part in ("Observation context: class XObservation", "Implementation details: Discrete(2)",
                 "XRewardFunction: def reward", "class XPolicy", "failed during a 500-timestep rollout (5 episodes)",
                 "NameError: y", "do not assume access to any other generated policy"):
        assert part in text, part
