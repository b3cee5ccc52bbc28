"""What acting through the sandbox costs a hybrid method (jump-start roll-ins, residual actions):
env steps per second with the guide called in this process (the reference, what an unprotected
implementation would do) against the same guide in a sandboxed `PolicySession`, for the hand-written
guides in examples/guides/, median of interleaved repeats.

    .venv/bin/python benchmarks/guide_session.py [--steps 5000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from llmrl.envs.spec import EnvSpec  # noqa: E402
from llmrl.sandbox import SandboxSettings  # noqa: E402
from llmrl.sandbox.session import PolicySession  # noqa: E402

CASES = [("cartpole", "cartpole_analytic.py"), ("mujoco_hopper", "hopper_posture.py")]


def env_config(name: str) -> dict:
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"env={name}"])
    return {k: v for k, v in OmegaConf.to_container(cfg.env, resolve=True).items() if not k.startswith("_")}


def in_process(source: str, spec: EnvSpec):
    """The guide's class run here (no protection), on the env's observation class."""
    namespace: dict = {"__name__": "guide"}
    sys.modules.setdefault("observations", type(sys)("observations"))
    obs_class = spec.describe().observation_class
    setattr(sys.modules["observations"], obs_class.__name__, obs_class)
    exec(compile(source, "<guide>", "exec"), namespace)
    policy = [v for v in namespace.values() if isinstance(v, type) and hasattr(v, "act")][-1]()
    return lambda obs: policy.act(obs_class(obs))


def steps_per_s(spec: EnvSpec, act, steps: int, new_episode=lambda: None) -> float:
    env = spec.make(seed=0)
    obs, _ = env.reset(seed=0)
    new_episode()
    start = time.perf_counter()
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(act(obs))
        if terminated or truncated:
            obs, _ = env.reset()
            new_episode()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for name, guide in CASES:
        env = env_config(name)
        spec = EnvSpec(**env)
        source = (REPO / "examples" / "guides" / guide).read_text()
        local = in_process(source, spec)
        with tempfile.TemporaryDirectory() as tmp, PolicySession(source, env, SandboxSettings(), Path(tmp)) as session:
            steps_per_s(spec, session.act, 200, session.new_episode)  # the child is started (and warm) before timing
            ours, ref = [], []
            for _ in range(args.repeats):
                ref.append(steps_per_s(spec, local, args.steps))
                ours.append(steps_per_s(spec, session.act, args.steps, session.new_episode))
            mode = session.describe()["mode"]
        r, o = statistics.median(ref), statistics.median(ours)
        rows.append((name, guide, r, o, o / r, 1e6 / o - 1e6 / r, mode))
    print(f"{args.steps} steps x {args.repeats} interleaved repeats, median")
    print("| env | guide | in-process guide (steps/s) | sandboxed guide (steps/s) | ratio | added us/step | sandbox |")
    print("|---|---|---:|---:|---:|---:|---|")
    for name, guide, r, o, ratio, added, mode in rows:
        print(f"| {name} | {guide} | {r:,.0f} | {o:,.0f} | {ratio:.3f} | {added:.0f} | {mode} |")


if __name__ == "__main__":
    main()
