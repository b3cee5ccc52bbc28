"""RL started from a guide policy (method=promptpo_jsrl | promptpo_bc | promptpo_residual), through
run.py with the real sandbox: the guide from a file or from PromptPO's rounds in the run (scripted
LLM over HTTP), every phase's steps on one curve, failures contained, kill -9 and resume exact."""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from llmrl.llm.scripted_server import Reply, ScriptedServer
from llmrl.tracking import read_curve
from tests.conftest import REPO, popen_cli, run_cli

GUIDES = REPO / "examples" / "guides"
CARTPOLE_GUIDE = GUIDES / "cartpole_analytic.py"


def guided(method: str, run_dir: Path, *extra: str, env: str = "cartpole") -> list[str]:
    return [f"method={method}", f"env={env}", "llm=none", "logger.progress=false", f"hydra.run.dir={run_dir}", *extra]


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def test_jump_start_hands_an_optimal_guides_episodes_to_the_agent(run_dir):
    """The analytic CartPole controller as the guide: the roll-in shrinks stage by stage to 0 and the
    agent alone ends at the guide's 500; every guide step is on the x-axis (results/llm_helps_rl/
    compares the time to 500 with PPO's: it is not shorter on CartPole)."""
    run_cli(*guided("promptpo_jsrl", run_dir, f"method.guide_policy={CARTPOLE_GUIDE}", "method.total_steps=100000",
                    "method.eval_every=10000", "method.jsrl.stages=4", "method.jsrl.window=3", "env.eval_episodes=5"),
            check=True, timeout=900)
    curve, done = read_curve(run_dir), summary(run_dir)
    assert curve[0]["phase"] == 0 and curve[0]["env_steps"] == 0 and curve[0]["return_mean"] == 500.0  # the guide itself
    rl = curve[1:]
    assert rl[0]["env_steps"] == 5000 and all(p["phase"] == 1 for p in rl)  # 10 measured episodes of 500 steps
    hs = [p["jsrl_h"] for p in rl]
    assert hs[0] == 375 and all(b <= a for a, b in zip(hs, hs[1:]))  # h0 = the guide's length 500, 4 stages
    assert done["jsrl"]["h_values"] == [375, 250, 125, 0] and done["jsrl"]["final_h"] == 0
    assert done["guide"]["train_return"] == 500.0 and done["jsrl"]["threshold"] == pytest.approx(475.0)
    alone = [p for p in rl if p["jsrl_h"] == 0]
    assert alone and all(p["guided_return"] == p["return_mean"] for p in alone)  # h = 0: one policy
    assert max(p["return_mean"] for p in alone) >= 475  # the agent alone at the guide's level
    assert 100000 <= done["total_env_steps"] < 100000 + 8  # the roll-ins stop at the budget too
    assert done["guide_failures"] == 0 and done["guide"]["sandbox"]["mode"] == "bwrap"


def test_behaviour_cloning_recovers_a_linear_policy():
    """In process: a linear Pendulum policy's episodes cloned into fresh PPO and SAC actors; their
    greedy actions on states from other episodes match it (R^2 > 0.98)."""
    import gymnasium as gym
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.vec_env import DummyVecEnv

    from guided.clone import clone

    def linear(obs):
        return np.array([-0.5 * obs[1] - 0.1 * obs[2]])  # never reaches the torque limit of 2

    def episodes(seeds):
        env, data = gym.make("Pendulum-v1"), {"obs": [], "actions": [], "rewards": [], "starts": [], "terminals": []}
        for s in seeds:
            obs, _ = env.reset(seed=s)
            for t in range(200):
                action = linear(obs)
                data["obs"].append(obs)
                data["actions"].append(action)
                data["starts"].append(t == 0)
                obs, reward, *_ = env.step(action)
                data["rewards"].append(reward)
                data["terminals"].append(False)
            data.setdefault("final_obs", []).append(obs)
        return {k: np.asarray(v) for k, v in data.items()}

    train, held_out = episodes(range(30)), episodes(range(100, 105))
    for cls in (PPO, SAC):
        venv = DummyVecEnv([lambda: gym.make("Pendulum-v1")])
        model = cls("MlpPolicy", venv, seed=0, device="cpu")
        report = clone(model, venv, train, epochs=40, batch_size=128, learning_rate=1e-3, value_fit=True, gamma=0.99, seed=0)
        assert report["action_loss"][-1] < report["action_loss"][0] / 10 and report["samples"] == 6000
        predicted = model.predict(held_out["obs"], deterministic=True)[0]
        truth = held_out["actions"]
        r2 = 1 - ((predicted - truth) ** 2).sum() / ((truth - truth.mean()) ** 2).sum()
        assert r2 > 0.98, (cls.__name__, r2)  # measured here: 0.99998 (PPO), 0.99993 (SAC)
        if cls is SAC:  # the guide's transitions start the replay buffer
            assert model.replay_buffer.size() == 6000


def test_behaviour_cloning_run_starts_rl_from_the_guide(run_dir):
    run_cli(*guided("promptpo_bc", run_dir, f"method.guide_policy={CARTPOLE_GUIDE}", "method.guide_episodes=4",
                    "method.total_steps=4000", "method.eval_every=1000", "env.eval_episodes=3"), check=True)
    curve, done = read_curve(run_dir), summary(run_dir)
    assert [p["phase"] for p in curve[:2]] == [0, 1]
    assert curve[1]["env_steps"] == 2000 and curve[1]["return_mean"] >= 450  # the cloned agent, before any RL update
    assert done["bc"]["samples"] == 2000 and done["bc"]["action_loss"][-1] < done["bc"]["action_loss"][0]
    assert done["guide"]["measure_steps"] == 2000 and done["total_env_steps"] >= 4000


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_residual_starts_exactly_at_the_guide(run_dir, algo):
    guide = GUIDES / "pendulum_linear.py"
    run_cli(*guided("promptpo_residual", run_dir, f"method.guide_policy={guide}", f"method.algo={algo}",
                    "method.guide_episodes=1", "method.total_steps=600", "method.eval_every=300", "env.eval_episodes=2",
                    env="pendulum"), check=True)
    curve = read_curve(run_dir)
    assert curve[0]["phase"] == 0 and curve[1]["phase"] == 1 and curve[1]["env_steps"] == 200
    # guide + a zero residual on the same held-out seeds: the same episodes to the last digit
    assert curve[1]["return_mean"] == curve[0]["return_mean"] and curve[1]["return_std"] == curve[0]["return_std"]
    assert summary(run_dir)["guide_sandbox"]["eval"]["actions"] > 0


def test_jump_start_sac_learns_from_the_roll_ins_too(run_dir):
    """With an off-policy learner the guide's roll-in transitions go into the replay buffer as well
    (JSRL trains on all the data it collects): every RL-phase step is in the buffer."""
    import pickle

    run_cli(*guided("promptpo_jsrl", run_dir, f"method.guide_policy={GUIDES / 'pendulum_linear.py'}", "method.algo=sac",
                    "method.guide_episodes=1", "method.total_steps=1000", "method.eval_every=500", "env.eval_episodes=1",
                    "+method.hparams.learning_starts=100", env="pendulum"), check=True)
    done = summary(run_dir)
    with open(run_dir / "checkpoint" / "replay_buffer.pkl", "rb") as f:
        buffer = pickle.load(f)
    assert done["jsrl"]["h_values"][0] == 180 and done["rl_start_env_steps"] == 200
    # all but the step that reached the budget (SB3 stops before storing it, as for SAC from scratch)
    assert buffer.size() == done["total_env_steps"] - done["rl_start_env_steps"] - 1


CRASHES = "class CartPolePolicy:\n    def act(self, obs):\n        return {'push': 1}['pull']\n"
TAMPERS = """import os, struct
FORGED = struct.pack('<IB', 5, ord('R')) + b'{"a":'


def _forge(fd):
    try:
        return os.write(fd, FORGED)
    except OSError:
        return 0


class CartPolePolicy:
    def act(self, obs):
        sent = sum(_forge(int(fd)) for fd in os.listdir('/proc/self/fd') if int(fd) > 2)
        return 1 if sent >= 0 else 0
"""
TIRES = """class CartPolePolicy:
    def __init__(self):
        self.calls = 0

    def act(self, obs):
        self.calls += 1
        if self.calls > 1200:
            raise RuntimeError('tired after 1200 actions')
        return 1 if obs.pole_angle + 0.5 * obs.pole_angular_velocity > 0 else 0
"""


def test_a_guide_that_crashes_or_tampers_is_contained(tmp_path):
    for name, source, message in (("crashes", CRASHES, "the guide policy failed while it was measured, before any training "
                                   "(episode 1 of 10): exception: KeyError"),
                                  ("tampers", TAMPERS, "the guide policy broke the sandbox's protocol while it was measured")):
        guide, run_dir = tmp_path / f"{name}.py", tmp_path / name
        guide.write_text(source)
        proc = run_cli(*guided("promptpo_jsrl", run_dir, f"method.guide_policy={guide}", "method.total_steps=5000"))
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr  # one line a user can act on
        assert summary(run_dir)["status"] == "failed" and message in summary(run_dir)["error"]


def test_a_guide_failing_during_training_falls_back_then_stops_the_run(tmp_path):
    """The guide's object fails after 1200 actions: measuring takes 2 x 500, so it fails inside the
    roll-ins; the agent takes those steps and a fresh guide process goes on. With no failure allowed,
    the run stops at the first one and says why."""
    guide = tmp_path / "tires.py"
    guide.write_text(TIRES)
    base = [f"method.guide_policy={guide}", "method.guide_episodes=1", "env.eval_episodes=1", "method.total_steps=6000",
            "method.eval_every=2000"]
    lenient = tmp_path / "lenient"
    run_cli(*guided("promptpo_jsrl", lenient, *base), check=True)
    done = summary(lenient)
    assert done["status"] == "done" and done["guide_failures"] >= 1
    assert "tired after 1200 actions" in done["guide_failure_messages"][0]
    assert read_curve(lenient)[-1]["guide_failures"] == done["guide_failures"]
    started = done["guide_sandbox"]["train"]["children_started"] + done["guide_sandbox"]["eval"]["children_started"]
    assert started == done["guide_failures"] + 2  # training's and evaluation's guide, each restarted after a failure
    strict = tmp_path / "strict"
    proc = run_cli(*guided("promptpo_jsrl", strict, *base, "method.max_guide_failures=0"))
    assert proc.returncode != 0 and "more than method.max_guide_failures=0" in proc.stderr
    assert summary(strict)["status"] == "failed" and len(read_curve(strict)) >= 1  # what it reported stays


GOOD = ("class CartPolePolicy:\n    def act(self, obs):\n"
        "        return 1 if obs.pole_angle + 0.5 * obs.pole_angular_velocity > 0 else 0\n")


def _scripted(request, index):
    """Every policy prompt gets the good controller; the second round's replies come slowly,
    so a kill lands inside PromptPO's phase."""
    text = request["messages"][-1]["content"]
    return Reply(content=f"```python\n{GOOD}```\n", delay_s=1.5 if "Attempt 1 generated policy" in text else 0.0)


def _kill_when(proc, run_dir: Path, points: int) -> None:
    deadline = time.time() + 300
    try:
        while time.time() < deadline and len(read_curve(run_dir)) < points:
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_promptpo_phase_then_rl_resume_exactly_after_kill_9(tmp_path):
    """guide=promptpo: PromptPO's rounds (phase 0) then jump-start PPO (phase 1) on one curve; killed
    in each phase and resumed, the run writes the uninterrupted run's curve."""
    def args(server, run_dir, cache):
        return ["method=promptpo_jsrl", "env=cartpole", "llm=vllm", f"llm.api_base={server.api_base}",
                "llm.model=openai/scripted", f"llm.cache_dir={cache}", "llm.concurrency=1", "method.guide_phase.rounds=2",
                "method.guide_phase.n_candidates=2", "method.guide_phase.episodes_per_candidate=2",
                "method.guide_phase.feedback=false", "method.guide_phase.reflection=false", "method.guide_episodes=2",
                "method.total_steps=16000", "method.eval_every=1000", "method.jsrl.stages=2", "method.jsrl.window=2",
                "env.eval_episodes=2", "logger.progress=false", f"hydra.run.dir={run_dir}"]

    killed, whole = tmp_path / "killed", tmp_path / "whole"
    with ScriptedServer(responder=_scripted) as server:
        _kill_when(popen_cli(*args(server, killed, tmp_path / "cache")), killed, 1)
        curve = read_curve(killed)
        assert len(curve) == 1 and curve[0]["phase"] == 0 and curve[0]["round"] == 1  # inside PromptPO's phase
        _kill_when(popen_cli(*args(server, killed, tmp_path / "cache"), "resume=true"), killed, 6)
        curve = read_curve(killed)
        assert curve[-1]["phase"] == 1 and not (killed / "summary.json").exists()  # inside RL's phase
        run_cli(*args(server, killed, tmp_path / "cache"), "resume=true", check=True)
        run_cli(*args(server, whole, tmp_path / "other_cache"), check=True)
        # another hybrid of the same seed draws PromptPO's replies: all from the cache, the same guide
        paired = tmp_path / "paired"
        run_cli(*[a.replace("promptpo_jsrl", "promptpo_bc") for a in args(server, paired, tmp_path / "cache")],
                "method.total_steps=6000", check=True)
    ours, reference = read_curve(killed), read_curve(whole)
    assert [p["phase"] for p in reference[:3]] == [0, 0, 1] and [p["round"] for p in reference[:2]] == [1, 2]
    assert reference[1]["return_mean"] == 500.0 and reference[2]["env_steps"] == reference[1]["env_steps"] + 1000
    assert [{k: v for k, v in p.items() if k != "wall_s"} for p in ours] == \
        [{k: v for k, v in p.items() if k != "wall_s"} for p in reference]
    done = summary(killed)
    assert done["status"] == "done" and done["guide"]["source"] == "promptpo" and done["guide"]["best_round"] == 1
    assert GOOD in (killed / "guide" / "guide_policy.py").read_text()
    usage = summary(paired)["llm_usage"]
    assert usage["calls"] > 0 and usage["cache_hits"] == usage["calls"] and usage["http_calls"] == 0
    assert summary(paired)["guide"]["sha256"] == done["guide"]["sha256"]
