"""The paper's real-world tasks beside glucose: traffic merging on SUMO and pandemic response.
Checker, reward sources and observation classes are covered for every env by test_envs.py; here:
what each model must do, and each env under PPO and under PromptPO (scripted LLM, real sandbox)."""
from __future__ import annotations

import json

import numpy as np

from llmrl.llm.scripted_server import Reply, ScriptedServer
from llmrl.tracking import read_curve
from tests.conftest import run_cli
from tests.test_envs import load_spec
from tests.test_promptpo import fenced


def test_traffic_runs_the_same_episode_in_process_and_in_a_worker():
    """libsumo holds one simulation per process: the second env runs in a worker, and a seed is one episode."""
    spec = load_spec("traffic_merge")
    first, second = spec.make(seed=0), spec.make(seed=0)
    try:
        runs = []
        for env in (first, second):
            obs, _ = env.reset(seed=7)
            rng = np.random.default_rng(1)
            seen, rewards = [obs], []
            for _ in range(120):
                obs, reward, terminated, truncated, info = env.step(rng.uniform(-1.5, 1.5, 10).astype(np.float32))
                seen.append(obs)
                rewards.append(reward)
            runs.append((np.array(seen), rewards))
        assert first.unwrapped._uses_libsumo and second.unwrapped._remote is not None
        assert np.array_equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
        view = spec.describe().wrap(runs[0][0][-1])
        # vehicles stream in: humans on the highway, buses (the RL vehicles) from the ramp into their slots
        assert view.all_vehicle_speeds.size > 10 and 1 <= view.present.sum() <= 10
        assert np.all(view.ego_speeds[~view.present] == 0) and np.all(view.all_vehicle_speeds >= 0)
        # another seed is another episode (SUMO's speed factors and insertions differ)
        obs, _ = first.reset(seed=8)
        for _ in range(120):
            obs, *_ = first.step(np.zeros(10, dtype=np.float32))
        assert not np.array_equal(obs, runs[0][0][-1])
    finally:
        first.close()
        second.close()


def _run_pandemic(env, stage_target: int, days: int) -> dict:
    peak_infected, beds, dead = 0.0, 0, []
    env.reset()
    for _ in range(days):
        stage = env.unwrapped.stage
        action = 2 if stage < stage_target else 0 if stage > stage_target else 1
        obs, reward, terminated, truncated, info = env.step(action)
        sim = env.unwrapped
        view = sim.history[-3:]
        for block in range(6):   # every summary is a distribution over the 5 states
            assert np.allclose(view[:, 3 + 5 * block: 8 + 5 * block].sum(axis=1), 1.0)
        peak_infected = max(peak_infected, sim.summary[2] / sim.n)
        beds = max(beds, int(sim.in_hospital.sum()))
        dead.append(info["dead"])
    return {"peak": peak_infected, "beds": beds, "dead": dead, "stage": env.unwrapped.stage}


def test_pandemic_regulations_slow_the_epidemic_and_delta_arrives_on_its_day():
    spec = load_spec("pandemic")
    env = spec.make(seed=0, delta_start=[20, 21])
    open_town = [_run_pandemic(env, 0, 60) for _ in range(3)]
    lockdown = [_run_pandemic(env, 4, 60) for _ in range(3)]
    assert all(r["stage"] == 4 for r in lockdown) and all(r["stage"] == 0 for r in open_town)
    assert np.mean([r["peak"] for r in open_town]) > 5 * np.mean([r["peak"] for r in lockdown])
    assert np.mean([r["peak"] for r in open_town]) > 0.1   # stage 0: an epidemic, not a handful of cases
    for r in open_town + lockdown:
        assert r["beds"] <= 5 and r["dead"] == sorted(r["dead"])   # 5 beds in tiny town; the dead stay dead
    # the delta variant: none before its day (20), spreading after it
    env.reset(seed=3)
    delta_before = delta_after = 0.0
    for day in range(45):
        env.step(1)
        infected_delta = 1.0 - env.unwrapped.history[-1, 13 + 3]   # 1 - NONE share of the delta summary
        if day < 20:
            delta_before = max(delta_before, infected_delta)
        else:
            delta_after = max(delta_after, infected_delta)
    assert delta_before == 0.0 and delta_after > 0.0
    env.close()


def test_short_ppo_runs_on_both_envs(tmp_path):
    for env, horizon in (("pandemic", 24), ("traffic_merge", 30)):
        run_dir = tmp_path / env
        run_cli(f"env={env}", "method=ppo", f"hydra.run.dir={run_dir}", "method.total_steps=256", "method.eval_every=128",
                "+method.hparams.n_steps=128", "+method.hparams.batch_size=64", f"env.horizon={horizon}",
                "env.eval_episodes=1", "logger.progress=false", check=True)
        curve = read_curve(run_dir)
        assert [p["env_steps"] for p in curve] == [0, 128, 256]
        assert all(np.isfinite(p["return_mean"]) for p in curve)
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "done"


PANDEMIC_KEEP = ("from observations import PandemicObservation, InfectionSummary, sorted_infection_summary\n\n\n"
                 "class PandemicPolicy:\n    def act(self, obs):\n"
                 "        critical = obs.global_infection_summary[-1, -1, sorted_infection_summary.index(InfectionSummary.CRITICAL)]\n"
                 "        return 2 if critical > 0.5 else 1\n")
PANDEMIC_RAISE = "class PandemicPolicy:\n    def act(self, obs):\n        return 2 if obs.stage[-1, -1, 0] < 4 else 1\n"
TRAFFIC_GAP = ("import numpy as np\n\n\nclass TrafficPolicy:\n    def act(self, obs):\n"
               "        want = np.where(obs.leader_headways > 2.0 * obs.ego_speeds, 1.0, -1.5)\n"
               "        return np.where(obs.present, want, 0.0).astype(np.float32)\n")
TRAFFIC_BRAKE = "import numpy as np\n\n\nclass TrafficPolicy:\n    def act(self, obs):\n        return np.full(10, -1.5, dtype=np.float32)\n"


def test_promptpo_on_both_envs_ranks_by_the_described_reward(tmp_path):
    """One round, two candidates each: the sandboxed policies read the observation classes (and the pandemic's
    reference imports), the described reward equals the env's, and the round keeps the higher return."""
    for env, horizon, first, second in (("pandemic", 20, PANDEMIC_RAISE, PANDEMIC_KEEP),
                                        ("traffic_merge", 25, TRAFFIC_BRAKE, TRAFFIC_GAP)):
        calls = {"n": 0}

        def responder(request, index, first=first, second=second):
            calls["n"] += 1
            return Reply(content=fenced(first if calls["n"] == 1 else second))

        run_dir = tmp_path / env
        with ScriptedServer(responder=responder) as server:
            run_cli("method=promptpo", f"env={env}", "llm=vllm", f"llm.api_base={server.api_base}",
                    "llm.model=openai/scripted", f"llm.cache_dir={tmp_path / 'cache'}", "llm.concurrency=1",
                    "method.rounds=1", "method.n_candidates=2", "method.episodes_per_candidate=2",
                    "method.feedback=false", "method.reflection=false", f"env.horizon={horizon}",
                    "env.eval_episodes=1", "logger.progress=false", f"hydra.run.dir={run_dir}", check=True)
        folder = run_dir / "promptpo" / "round_01"
        results = [json.loads((folder / f"candidate_{i:02d}" / "attempt_00.json").read_text()) for i in (0, 1)]
        for result in results:
            assert result["error"] is None and result["lengths"] == [horizon, horizon]
            assert np.allclose(result["returns"], result["env_returns"], rtol=1e-9, atol=1e-9)
        means = [np.mean(r["returns"]) for r in results]
        winner = json.loads((folder / "summary.json").read_text())["winner"]
        assert winner == int(np.argmax(means))
        if env == "pandemic":   # raising the stage without infections costs the political penalty: keeping wins
            assert winner == 1 and means[1] > means[0] + 5
        curve = read_curve(run_dir)
        assert len(curve) == 1 and np.isfinite(curve[0]["return_mean"])


def test_ultra_narrates_what_the_state_holds():
    """ULTRA's narrators for both envs (conf/method/_ultra_base.yaml narrators): what the LLM reads is the state."""
    import gymnasium as gym

    from ultra.narration import PandemicNarrator, TrafficNarrator

    spec = load_spec("pandemic")
    env = spec.make(seed=0)
    obs, _ = env.reset(seed=0)
    for action in (2, 2, 1, 1, 1, 1, 1, 1):
        obs, *_ = env.step(action)
    narrator = PandemicNarrator(spec.describe(), env.action_space)
    values = dict(kv.split("=") for kv in narrator.describe_state(obs, {}).split(", "))
    sim = env.unwrapped
    assert int(values["stage"]) == sim.stage == 2
    assert float(values["infected"]) == float(f"{sim.summary[2] / sim.n:.4g}")
    assert float(values["tested_infected"]) == float(f"{sim.test_summary[2] / sim.n:.4g}")
    assert narrator.key(obs, {}).shape == (99,) and narrator.describe_action(2) == "2 (raise the stage)"
    env.close()

    spec = load_spec("traffic_merge")
    env = spec.make(seed=0)
    obs, _ = env.reset(seed=0)
    for _ in range(80):
        obs, *_ = env.step(np.full(10, 0.5, dtype=np.float32))
    narrator = TrafficNarrator(spec.describe(), gym.spaces.Box(-1.5, 1.5, (10,)))
    text = narrator.describe_state(obs, {})
    sim = env.unwrapped
    for i, vid in enumerate(sim.rl_veh[:10]):
        assert f"bus{i}(v={float(sim.k.vehicle.getSpeed(vid)):.4g}," in text
    assert f"vehicles={len(sim.k.vehicle.getIDList())}," in text
    assert np.array_equal(narrator.key(obs, {}), obs[:50])
    env.close()
