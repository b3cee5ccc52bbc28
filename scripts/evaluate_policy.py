"""Evaluate any policy file (PromptPO's best_policy.py, one written by hand, or one from another
PromptPO implementation) in the same sandbox the method uses, on the env's evaluation seeds.

    python scripts/evaluate_policy.py POLICY_FILE env=cartpole [+episodes=10] [seed=0] [+class_name=CartPolePolicy]
    python scripts/evaluate_policy.py POLICY_FILE env=mujoco_hopper +interface=reference

The file must define a class with `act(self, obs)`; `obs` is the env's documented observation
class (llmrl/envs/descriptions/<env>/observation.py). With `+interface=reference` it may be a
policy published with PromptPO (Stephanehk/PromptPO `representitive_policies/`), unchanged: its
imports (`from direct_policy_learning.observations import ...`, the glucose wrapper's) resolve in
the sandbox and its observation objects carry the reference's names (`obs_vector`, MuJoCo's
`qpos`/`qvel`/`dt`, PointMaze's `observation_vector`, glucose's `bg`/`insulin`/`cho`...). Prints
per-episode returns (with the described reward, and the env's own), successes where defined, and the mean.
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llmrl.identity import register_resolvers  # noqa: E402

register_resolvers()
POLICY_FILE: Path | None = None


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from llmrl.sandbox import Sandbox, SandboxSettings
    from llmrl.seeding import eval_seeds

    env = {k: v for k, v in OmegaConf.to_container(cfg.env, resolve=True).items() if not k.startswith("_")}
    episodes = int(cfg.get("episodes", cfg.env.eval_episodes))
    seeds = eval_seeds(int(cfg.seed), int(cfg.eval_seed_offset), episodes)

    settings = SandboxSettings.from_config(cfg.sandbox)
    if str(cfg.get("interface", "ours")) not in ("ours", "reference"):
        print(f"error: +interface={cfg.get('interface')!r}: choose ours or reference", file=sys.stderr)
        sys.exit(2)
    settings.workers = 1  # one evaluation: with a spare core, its evaluator and policy get a core each
    with tempfile.TemporaryDirectory(prefix="evaluate-") as scratch, Sandbox(settings, Path(scratch)) as sandbox:
        result = sandbox.run(sandbox.job(env, POLICY_FILE.read_text(), seeds, class_name=cfg.get("class_name"),
                                         interface=str(cfg.get("interface", "ours"))))
        mode = sandbox.describe()["mode"]
    if not result["ok"]:
        err = result["error"]
        print(f"error: the policy failed ({err['kind']}): {err['message']}", file=sys.stderr)
        if err.get("traceback"):
            print(err["traceback"], file=sys.stderr)
        sys.exit(1)
    print(f"{POLICY_FILE} on {cfg.env.name}, {episodes} episodes, eval seeds from {seeds[0]} (sandbox: {mode})")
    successes = result.get("successes")
    for k, (ret, env_ret, length) in enumerate(zip(result["returns"], result["env_returns"], result["lengths"])):
        line = f"episode {k}: return {ret:.4f} (env reward {env_ret:.4f}), {length} steps"
        if successes is not None:
            line += f", success {successes[k]:g}"
        print(line)
    summary = {"return_mean": statistics.fmean(result["returns"]), "return_std": statistics.pstdev(result["returns"])}
    if successes is not None:
        summary["success_rate"] = statistics.fmean(successes)
    print(json.dumps(summary))


if __name__ == "__main__":
    if len(sys.argv) < 2 or "=" in sys.argv[1] or sys.argv[1].startswith("-"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    POLICY_FILE = Path(sys.argv.pop(1)).resolve()
    if not POLICY_FILE.is_file():
        print(f"error: no policy file at {POLICY_FILE}", file=sys.stderr)
        sys.exit(2)
    if not any(a.startswith("hydra.run.dir=") for a in sys.argv[1:]):
        sys.argv += ["hydra.run.dir=" + tempfile.mkdtemp(prefix="evaluate-run-"), "hydra.output_subdir=null"]
    main()
