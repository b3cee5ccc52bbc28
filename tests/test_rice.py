"""StateMask-R and RICE: the explanation finds a known critical step, the mixed initial-state
distribution and the RND bonus do what the papers say, and both methods run on the refinement
harness (toy env, Hopper) from the same shared sub-optimal agent as every other method."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

from llmrl.analysis.report import build
from llmrl.envs.restore import snapshot
from llmrl.refine.rnd import RndBonus
from llmrl.refine.starts import CriticalStarts
from llmrl.tracking import read_curve
from rice import mask as statemask
from tests.conftest import run_cli
from tests.test_envs import load_spec

TOY_VIEWS = np.array([[t / 19, float(t == 10)] for t in range(20)], np.float32)


def test_statemask_marks_the_known_critical_step_first():
    """The optimal agent of the toy corridor: only step 10's action matters (0 ends the episode).
    The mask learns to blind everywhere else and to keep the agent's action there."""
    spec = load_spec("toy_critical_step")
    mask, stats = statemask.train(spec, None, lambda obs: 1, lambda obs: np.asarray(obs, np.float32),
                                  steps=8192, bonus=0.1, seed=0)
    keep = statemask.importance(mask, TOY_VIEWS)
    assert int(np.argmax(keep)) == 10
    assert keep[10] > 0.9 and np.delete(keep, 10).max() < keep[10] - 0.3
    assert stats["mask_steps"] == 8192 and 0.2 < stats["blind_share"] < 0.8


def test_mixed_initial_distribution_restores_pooled_states_with_probability_p():
    spec = load_spec("toy_critical_step")
    env = spec.make(seed=0)
    obs, info = env.reset(seed=0)
    for _ in range(7):
        obs, *_rest, info = env.step(1)
    pool = [snapshot(env, obs, info)]
    starts = CriticalStarts(env, prob=0.25, seed=3)
    assert starts.reset(seed=1)[0][0] == 0.0  # empty pool: a plain reset
    starts.set_pool(pool)
    n, from_pool = 4000, 0
    for i in range(n):
        obs, info = starts.reset(seed=i)
        if info.get("critical_start"):
            from_pool += 1
            assert obs[0] == pytest.approx(7 / 19) and env.unwrapped.t == 7  # the pooled state itself
            assert starts.step(1)[0][0] == pytest.approx(8 / 19)  # and the episode goes on from there
        else:
            assert obs[0] == 0.0
    assert from_pool == starts.pool_starts
    assert abs(from_pool / n - 0.25) < 4 * np.sqrt(0.25 * 0.75 / n)  # within 4 binomial standard errors


def test_rnd_bonus_falls_on_states_the_predictor_has_seen_and_weight_scales_the_reward():
    spec = load_spec("toy_critical_step")

    def venv(weight):
        return RndBonus(DummyVecEnv([lambda: spec.make(seed=0)]), weight, seed=5, lr=1e-3, epochs=20, batch_size=32)

    plain = venv(0.0)
    plain.reset()
    rewards = [plain.step(np.array([1]))[1][0] for _ in range(19)]
    assert rewards == [1.0] * 19  # lambda = 0: the env's reward untouched (the bonus is still reported)
    rnd = venv(0.5)
    rnd.reset()
    first = [rnd.step(np.array([1])) for _ in range(19)]
    bonus_before = np.array([f[3][0]["rnd_bonus"] for f in first])
    assert np.allclose([f[1][0] for f in first], 1.0 + 0.5 * bonus_before, atol=1e-5)
    for _ in range(5):  # the predictor trains on the corridor's states
        rnd.seen.append(np.stack([f[0][0] for f in first]))
        rnd.learn()
    seen = rnd.bonus(np.stack([f[0][0] for f in first]))
    unseen = rnd.bonus(np.array([[5.0, -3.0], [-4.0, 6.0]], np.float32))  # far from anything visited
    assert seen.mean() < 0.5 * bonus_before.mean()
    assert unseen.min() > seen.max()


def _refine(method, run_dir, *extra, env="toy_critical_step"):
    budgets = ["method.pretrain_steps=4096", "method.refine_steps=12288", "method.eval_every=2048"]
    explain = ["method.mask_steps=8192", "method.mask_bonus=0.1", "method.num_trajectories=3"]
    if env == "mujoco_hopper":
        budgets = ["method.pretrain_steps=1024", "method.refine_steps=4096", "method.eval_every=2048", "env.eval_episodes=2"]
        explain = ["method.mask_steps=512", "+method.mask_hparams.n_steps=256", "method.num_trajectories=2"]
    if method in ("statemask_r", "rice"):
        budgets += explain
    run_cli(f"method={method}", f"env={env}", *budgets, "logger.progress=false", f"hydra.run.dir={run_dir}", *extra,
            check=True)
    return json.loads((run_dir / "summary.json").read_text())


def test_statemask_r_restarts_from_the_critical_step_and_shares_the_agent_with_other_methods(tmp_path):
    store = tmp_path / "pretrained"
    s = _refine("statemask_r", tmp_path / "sm", f"method.share_pretrained={store}")
    other = _refine("ppo_finetune", tmp_path / "ft", f"method.share_pretrained={store}")
    e = s["explanation"]
    assert s["status"] == "done" and e["explanations"] == 1
    assert [p["step"] for p in e["pool"]] == [10, 10, 10]  # every explained episode's top step
    assert e["critical_start_share"] == 1.0 and e["critical_starts"] == e["resets"] > 0
    # the mask's training and the explanation episodes are part of the refinement budget
    assert e["mask_steps"] >= 8192 and e["explanation_steps"] == 3 * 20
    assert s["total_env_steps"] == other["total_env_steps"] == 4096 + 12288
    # one agent, trained by the first job, loaded by the second: same weights, same phase 0
    assert s["pretrained_params_sha256"] == other["pretrained_params_sha256"]
    assert s["pretrained_from"] == other["pretrained_from"]
    meta = json.loads((tmp_path / s["pretrained_from"] / "meta.json").read_text())
    assert meta["trained_by"] == str(tmp_path / "sm")
    phase0 = [[p for p in read_curve(tmp_path / d) if p["phase"] == 0] for d in ("sm", "ft")]
    assert [(p["env_steps"], p["return_mean"]) for p in phase0[0]] == [(p["env_steps"], p["return_mean"]) for p in phase0[1]]
    # the report says what the refinement acted on, and that both methods refined one agent
    report = build([tmp_path / "sm", tmp_path / "ft"], tmp_path / "report", {}, reps=100).read_text()
    section = report.split("## Refinement: what each method acted on")[1]
    assert "Sub-optimal agents per seed: {0: 1}" in section
    assert re.search(r"\| toy_critical_step \| statemask_r\S* \| 1 \|.*\| 1 \|", section)


def test_rice_mixes_starts_and_pays_the_rnd_bonus_on_hopper(tmp_path):
    run_dir = tmp_path / "rice"
    s = _refine("rice", run_dir, "method.reset_prob=0.5", "method.rnd_weight=0.01", env="mujoco_hopper")
    e = s["explanation"]
    assert s["status"] == "done" and s["total_env_steps"] == 1024 + 4096
    assert e["reset_prob"] == 0.5 and e["rnd_weight"] == 0.01 and len(e["pool"]) == 2
    assert 0 < e["critical_starts"] < e["resets"]
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any(m.get("rnd/bonus_mean", 0) > 0 for m in metrics)
    assert (run_dir / "refine" / "checkpoint").exists() or (run_dir / "checkpoint").exists()
    assert read_curve(run_dir)[-1]["critical_pool"] == 2


def test_explanation_methods_say_when_they_cannot_run(tmp_path):
    out = run_cli("method=rice", "env=metaworld_reach", "logger.progress=false", f"hydra.run.dir={tmp_path / 'r'}")
    assert out.returncode != 0
    assert "state restore supports" in out.stderr and "(Meta-World) keeps task state outside" in out.stderr
    out = run_cli("method=statemask_r", "env=toy_critical_step", "method.refine_steps=1000", "logger.progress=false",
                  f"hydra.run.dir={tmp_path / 's'}")
    assert out.returncode != 0 and "method.mask_steps=20000" in out.stderr and "raise refine_steps" in out.stderr
