"""ULTRA's refinement speed: PPO env-steps per second with the critical-state guide (matching
every live state against the table, overriding actions, shaping rewards) versus plain PPO
fine-tuning (`ppo_finetune`), same env, hyperparameters and step count, measured here.

    .venv/bin/python benchmarks/ultra_matching.py [--steps 8192] [--repeats 5] [--env mujoco_hopper]

Each measurement runs in a fresh subprocess (model construction + learn, as in refinement);
the configurations are interleaved per repeat so machine drift hits them alike. Cases: a table
of the default size (5 episodes x 3 windows x 3 steps = 45 entries) at the default radius, a
1000-entry table, and the worst case where every state matches (every action overridden and
its log-probability recomputed). Ratio = guided / plain, median over repeats (goal >= 0.9)."""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CASES = {
    "ppo_finetune (plain)": None,
    "guided, 45 entries, radius 0.2": (45, 0.2),
    "guided, 1000 entries, radius 0.2": (1000, 0.2),
    "guided, 45 entries, every state matches": (45, 1e9),
}


def measure(env_name: str, steps: int, case: list | None) -> dict:
    import numpy as np
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from stable_baselines3 import PPO

    from llmrl.counting import StepCounter
    from llmrl.sb3 import hyperparams
    from llmrl.sb3.venv import make_venv
    from ultra.guide import GuidedMlpPolicy, CriticalStateGuide
    from ultra.table import CriticalState, CriticalTable

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        spec = instantiate(compose(config_name="config", overrides=[f"env={env_name}", "method=ppo"]).env)
    hp = hyperparams.resolve("ppo", env_name, {})
    rng = np.random.default_rng(0)
    guide_box = {}
    table = None
    if case is not None:
        n, radius = case
        env = spec.make(seed=0)
        obs, _ = env.reset(seed=0)
        keys = []
        while len(keys) < max(n, 200):  # table keys from states a random agent visits
            keys.append(np.asarray(obs, dtype=np.float64))
            obs, _, term, trunc, _ = env.step(env.action_space.sample())
            if term or trunc:
                obs, _ = env.reset()
        env.close()
        keys = np.stack(keys)
        entries = [CriticalState(key=keys[i].tolist(), action=rng.uniform(-1, 1, env.action_space.shape).tolist(),
                                 reward=float(rng.uniform(-1, 1))) for i in rng.choice(len(keys), n, replace=False)]
        table = CriticalTable(entries, CriticalTable.spread(keys), radius)

    def wrap(v):
        guide_box["g"] = CriticalStateGuide(v, lambda o, i: np.asarray(o, dtype=np.float64), 1.0, True, True)
        guide_box["g"].set_table(table)
        return guide_box["g"]

    counter = StepCounter()
    t0 = time.perf_counter()
    venv = make_venv(spec, counter, hp, 0, None, wrap if case is not None else None)
    policy = GuidedMlpPolicy if case is not None else hp.get("policy", "MlpPolicy")
    model = PPO(policy, venv, seed=0, device="cpu", verbose=0, **hyperparams.to_sb3_kwargs(hp))
    if case is not None:
        model.policy.guide = guide_box["g"]
    model.learn(total_timesteps=steps)
    elapsed = time.perf_counter() - t0
    g = guide_box.get("g")
    return {"steps_per_s": counter.steps / elapsed, "overrides": g.overrides if g else 0, "steps": counter.steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--env", default="mujoco_hopper")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.env, args.steps, json.loads(args.child))))
        return
    results: dict[str, list[dict]] = {name: [] for name in CASES}
    for r in range(args.repeats):
        for name, case in CASES.items():
            out = subprocess.run([sys.executable, __file__, "--env", args.env, "--steps", str(args.steps),
                                  "--child", json.dumps(case)], capture_output=True, text=True, check=True)
            results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"repeat {r + 1}/{args.repeats} {name}: {results[name][-1]['steps_per_s']:.0f} steps/s", file=sys.stderr)
    plain = [x["steps_per_s"] for x in results["ppo_finetune (plain)"]]
    print(f"\n{args.env}, {args.steps} PPO steps per measurement, {args.repeats} interleaved repeats\n")
    print("| case | median steps/s | best steps/s | overrides / steps | ratio to plain (median of paired) |")
    print("|---|---|---|---|---|")
    for name, rows in results.items():
        sps = [x["steps_per_s"] for x in rows]
        ratio = statistics.median(a / b for a, b in zip(sps, plain))
        frac = statistics.median(x["overrides"] / x["steps"] for x in rows)
        print(f"| {name} | {statistics.median(sps):.0f} | {max(sps):.0f} | {frac:.3f} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
