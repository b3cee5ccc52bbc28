"""PPO and SAC through stable-baselines3: build the vectorised, step-counted training envs
(llmrl.sb3.venv), train, and let the curve callback (llmrl.sb3.curve) evaluate on separate envs
and seeds every `eval_every` env steps, log a point and write a checkpoint."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gymnasium as gym
from stable_baselines3 import PPO, SAC

from llmrl.sb3 import hyperparams
from llmrl.checkpoint import Checkpoint
from llmrl.envs.spec import EnvSpec
from llmrl.errors import ConfigError, Incompatible
from llmrl.runner import RunContext
from llmrl.sb3 import signals, snapshot
from llmrl.sb3.curve import CurveCallback
from llmrl.sb3.venv import make_venv

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
        self.device = hyperparams.check_device(device)
        self.write_checkpoints = checkpoint
        self.hp: dict[str, Any] = {}
        self._planned: int | None = None  # set by budget(), which the runner calls before train()

    # ---- planning (runs before any training) -------------------------------------------------
    def budget(self, spec: EnvSpec) -> int:
        space = spec.action_space()
        if self.algo == "sac" and not isinstance(space, gym.spaces.Box):
            raise Incompatible(
                f"method=sac needs a continuous (Box) action space, but env {spec.name} has {space}; use method=ppo"
            )
        self.hp = hyperparams.resolve(self.algo, spec.name, self.hparam_overrides)
        self._planned = int(self.total_steps or int(float(self.hp.get("n_timesteps", 1_000_000))))
        return self._planned

    # ---- training ---------------------------------------------------------------------------
    def train(self, ctx: RunContext, checkpoint: Checkpoint | None) -> dict[str, Any]:
        total = self._planned if self._planned is not None else self.budget(ctx.spec)
        # seed base disjoint from eval seeds (seed + eval_seed_offset + i)
        normalizer = checkpoint.path / "vecnormalize.pkl" if checkpoint is not None else None
        venv = make_venv(ctx.spec, ctx.counter, self.hp, ctx.seed * 1000, normalizer)
        cls = ALGOS[self.algo]
        if checkpoint is not None:
            # force_reset=False keeps the envs where they were (snapshot below); hyperparameters that
            # resume_allow_changes let change take their new values instead of the saved ones
            changed = self._changed_hparams(ctx)
            model = cls.load(str(checkpoint.path / "model.zip"), env=venv, device=self.device, force_reset=False,
                             custom_objects=changed)
            if self.algo == "sac" and (checkpoint.path / "replay_buffer.pkl").exists():
                model.load_replay_buffer(str(checkpoint.path / "replay_buffer.pkl"))
            next_eval = int(checkpoint.state["next_eval"])
            if not snapshot.restore(checkpoint.path, venv):  # a checkpoint from before exact resume existed
                model._last_obs = None
                venv.seed(ctx.seed * 1000 + checkpoint.env_steps)
        else:
            policy = self.hp.get("policy", "MlpPolicy")
            model = cls(policy, venv, seed=ctx.seed, device=self.device, verbose=0, **hyperparams.to_sb3_kwargs(self.hp))
            next_eval = 0
        signals.attach(model, ctx)
        write = _save_replay_buffer if self.algo == "sac" else None
        callback = CurveCallback(ctx, venv, self.eval_every, next_eval, checkpoint=self.write_checkpoints, write_files=write)
        remaining = total - model.num_timesteps
        if remaining > 0:
            model.learn(total_timesteps=remaining, callback=callback, reset_num_timesteps=False, progress_bar=False)
            signals.flush(model)
        callback.final_point()
        venv.close()
        latest = ctx.checkpoints.load()
        if latest is not None:  # the trained model behind the curve, linked from the W&B run
            ctx.tracker.log_artifact(f"{ctx.tracker.label}-model", "model",
                                     [latest.path / "model.zip", latest.path / "vecnormalize.pkl"],
                                     {"algo": self.algo, "env_steps": latest.env_steps})
        return {"algo": self.algo, "total_steps": total, "eval_wall_s": round(callback.eval_wall_s, 3), "hparams": hyperparams.printable(self.hp)}


    def effective_config(self) -> dict[str, Any]:
        """What this run trains with, after the per-env table and the overrides (known before training)."""
        return {"algo": self.algo, "total_steps": self._planned, "hparams": hyperparams.printable(self.hp)}

    def _changed_hparams(self, ctx: RunContext) -> dict[str, Any]:
        """SB3 constructor arguments among the changes resume_allow_changes let through (e.g. a
        learning rate), with their new values, for `load(custom_objects=...)`."""
        from llmrl.rundir import recorded_changes

        latest = recorded_changes(ctx.run_dir)[-1:] or [{"changes": []}]
        keys = {c["key"].split(".", 2)[2] for c in latest[0]["changes"] if c["key"].startswith("method.hparams.")}
        kwargs = hyperparams.to_sb3_kwargs(self.hp)
        return {k: kwargs[k] for k in keys if k in kwargs}


def _save_replay_buffer(model, folder: Path) -> None:
    model.save_replay_buffer(str(folder / "replay_buffer.pkl"))
