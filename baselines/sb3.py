"""PPO and SAC through stable-baselines3. The whole harness is here: build the vectorised,
step-counted training envs, train, and at every `eval_every` env steps evaluate on separate
envs and seeds, log a curve point and write a checkpoint."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from baselines import hyperparams
from llmrl.checkpoint import Checkpoint
from llmrl.envs.spec import EnvSpec
from llmrl.errors import ConfigError
from llmrl.evaluation import evaluate
from llmrl.runner import RunContext

log = logging.getLogger(__name__)
ALGOS = {"ppo": PPO, "sac": SAC}


class SB3Baseline:
    needs_llm = False
    extra_columns: list[str] = []

    def __init__(
        self,
        name: str,
        algo: str,
        total_steps: int | None = None,
        eval_every: int = 10_000,
        hparams: dict[str, Any] | None = None,
        device: str = "cpu",
        checkpoint: bool = True,
    ) -> None:
        if algo not in ALGOS:
            raise ConfigError(f"method.algo={algo!r}: choose one of {sorted(ALGOS)}")
        if total_steps is not None and (not isinstance(total_steps, int) or total_steps <= 0):
            raise ConfigError(
                f"method.total_steps={total_steps!r} must be a positive integer number of env steps, "
                f"e.g. method.total_steps=100000 (or null for the env's tuned budget)"
            )
        if not isinstance(eval_every, int) or eval_every <= 0:
            raise ConfigError(f"method.eval_every={eval_every!r} must be a positive integer, e.g. method.eval_every=10000")
        self.name, self.algo = name, algo
        self.total_steps = total_steps
        self.eval_every = eval_every
        self.hparam_overrides = dict(hparams or {})
        self.device = device
        self.write_checkpoints = checkpoint
        self.hp: dict[str, Any] = {}
        self._planned: int | None = None  # set by budget(), which the runner calls before train()

    # ---- planning (runs before any training) -------------------------------------------------
    def budget(self, spec: EnvSpec) -> int:
        probe = spec.make()
        space = probe.action_space
        probe.close()
        if self.algo == "sac" and not isinstance(space, gym.spaces.Box):
            raise ConfigError(
                f"method=sac needs a continuous (Box) action space, but env {spec.name} has {space}; use method=ppo"
            )
        self.hp = hyperparams.resolve(self.algo, spec.name, self.hparam_overrides)
        self._planned = int(self.total_steps or int(float(self.hp.get("n_timesteps", 1_000_000))))
        return self._planned

    # ---- training ---------------------------------------------------------------------------
    def _make_venv(self, ctx: RunContext, checkpoint: Checkpoint | None):
        n_envs = int(self.hp.get("n_envs", 1))
        # Each sub-env counts its own steps into the one shared counter (the curve's x-axis).
        base = ctx.seed * 1000  # disjoint from eval seeds (seed + eval_seed_offset + i)
        fns = [lambda i=i: Monitor(ctx.spec.make(seed=base + i, counter=ctx.counter)) for i in range(n_envs)]
        venv = DummyVecEnv(fns)
        norm = hyperparams.normalize_kwargs(self.hp)
        if norm is None:
            return venv
        if checkpoint is not None and (checkpoint.path / "vecnormalize.pkl").exists():
            return VecNormalize.load(str(checkpoint.path / "vecnormalize.pkl"), venv)
        return VecNormalize(venv, gamma=float(self.hp.get("gamma", 0.99)), **norm)

    def train(self, ctx: RunContext, checkpoint: Checkpoint | None) -> dict[str, Any]:
        total = self._planned if self._planned is not None else self.budget(ctx.spec)
        venv = self._make_venv(ctx, checkpoint)
        cls = ALGOS[self.algo]
        if checkpoint is not None:
            model = cls.load(str(checkpoint.path / "model.zip"), env=venv, device=self.device)
            if self.algo == "sac" and (checkpoint.path / "replay_buffer.pkl").exists():
                model.load_replay_buffer(str(checkpoint.path / "replay_buffer.pkl"))
            next_eval = int(checkpoint.state["next_eval"])
            venv.seed(ctx.seed * 1000 + checkpoint.env_steps)
        else:
            policy = self.hp.get("policy", "MlpPolicy")
            model = cls(policy, venv, seed=ctx.seed, device=self.device, verbose=0, **hyperparams.to_sb3_kwargs(self.hp))
            next_eval = 0
        callback = CurveCallback(self, ctx, venv, next_eval, total)
        remaining = total - model.num_timesteps
        if remaining > 0:
            model.learn(total_timesteps=remaining, callback=callback, reset_num_timesteps=False, progress_bar=False)
        callback.final_point()
        venv.close()
        return {"algo": self.algo, "total_steps": total, "eval_wall_s": round(callback.eval_wall_s, 3), "hparams": _printable(self.hp)}


class CurveCallback(BaseCallback):
    """Evaluation, curve points and checkpoints on SB3's step hook (the CleanRL loop's
    `if global_step % eval_every == 0` written as a callback)."""

    def __init__(self, method: SB3Baseline, ctx: RunContext, venv, next_eval: int, total: int) -> None:
        super().__init__()
        self.method, self.ctx, self.venv = method, ctx, venv
        self.next_eval = next_eval
        self.total = total
        self.eval_wall_s = 0.0  # time spent evaluating (this process), reported in the summary

    def _act(self, obs):
        if isinstance(self.venv, VecNormalize):
            obs = self.venv.normalize_obs(obs)
        return self.model.predict(obs, deterministic=True)[0]

    def _evaluate_and_log(self) -> None:
        steps = self.ctx.counter.steps
        start = time.perf_counter()
        result = evaluate(self.ctx.spec, self._act, self.ctx.eval_seeds())
        self.eval_wall_s += time.perf_counter() - start
        self.ctx.tracker.log_point(env_steps=steps, **result.point())
        if self.method.write_checkpoints:
            self._save(steps)

    def _save(self, steps: int) -> None:
        def write(folder: Path) -> None:
            self.model.save(str(folder / "model.zip"))
            if isinstance(self.venv, VecNormalize):
                self.venv.save(str(folder / "vecnormalize.pkl"))
            if self.method.algo == "sac":
                self.model.save_replay_buffer(str(folder / "replay_buffer.pkl"))

        state = {"env_steps": steps, "next_eval": self.next_eval, "wall_s": self.ctx.tracker.wall_s}
        self.ctx.checkpoints.save(write, state)

    def _on_training_start(self) -> None:
        if not self.ctx.tracker.points:  # the untrained policy is the curve's first point
            self.next_eval = self.method.eval_every
            self._evaluate_and_log()

    def _on_step(self) -> bool:
        steps = self.ctx.counter.steps
        if steps % 256 < self.training_env.num_envs:
            self.ctx.tracker.progress(steps)
        if steps >= self.next_eval:
            while self.next_eval <= steps:
                self.next_eval += self.method.eval_every
            self._evaluate_and_log()
        return True

    def final_point(self) -> None:
        points = self.ctx.tracker.points
        if not points or points[-1]["env_steps"] < self.ctx.counter.steps:
            self._evaluate_and_log()


def _printable(hp: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (int, float, str, bool, list, dict)) or v is None else str(v)) for k, v in hp.items()}
