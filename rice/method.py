"""StateMask-R and RICE (Cheng et al., NeurIPS 2023 / ICML 2024) on the refinement harness, so
they refine the same sub-optimal agent with the same budget and evaluation as ULTRA.

At the start of refinement (and every `reexplain_every` PPO updates):
1. explanation: a StateMask network is trained against the current agent for `mask_steps`
   env steps (`rice.mask`), once, at the first explanation;
2. critical states: `num_trajectories` episodes of the agent are run with snapshots; in each,
   the `critical_per_episode` steps of highest importance (RICE: the single most critical one)
   join the pool of critical states;
3. refinement: PPO goes on with a mixed initial-state distribution: each training episode
   starts from a pooled critical state with probability `reset_prob` (RICE's p; StateMask-R
   restarts from critical states only: p = 1), otherwise from the env's own start
   (`llmrl.refine.starts`), and with RICE's random-network-distillation bonus of weight
   `rnd_weight` (lambda; 0 for StateMask-R) added to the reward (`llmrl.refine.rnd`).
The mask's training steps and the explanation episodes are env steps of the refinement budget."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3 import PPO

from llmrl.envs.spec import EnvSpec
from llmrl.errors import ConfigError
from llmrl.refine.episodes import run_episodes
from llmrl.refine.harness import CountRollouts, Refinement, positive_int, probability
from llmrl.refine.rnd import RndBonus, RndCallback
from llmrl.refine import starts
from llmrl.refine.starts import starts_of
from llmrl.sb3.venv import deterministic_act, observation_view
from rice import mask as statemask

log = logging.getLogger(__name__)


class Explained(Refinement):
    columns = ("critical_pool", "blind_share")
    counters = ("explanations", "mask_steps", "explanation_steps", "critical_starts", "resets")

    def __init__(
        self,
        name: str,
        reset_prob: float = 0.5,
        rnd_weight: float = 0.0,
        rnd: dict[str, Any] | None = None,
        mask_steps: int = 20000,
        mask_bonus: float = 1e-4,
        mask_hparams: dict[str, Any] | None = None,
        num_trajectories: int = 5,
        critical_per_episode: int = 1,
        reexplain_every: int = 0,
        **harness: Any,
    ) -> None:
        super().__init__(name, **harness)
        self.reset_prob = probability("reset_prob", reset_prob)
        if not isinstance(rnd_weight, (int, float)) or rnd_weight < 0:
            raise ConfigError(f"method.rnd_weight={rnd_weight!r} must be a number >= 0 (RICE's lambda; 0 = no bonus)")
        self.rnd_weight = float(rnd_weight)
        self.rnd_settings = dict(rnd or {})
        self.mask_steps = positive_int("mask_steps", mask_steps)
        self.mask_bonus = float(mask_bonus)
        self.mask_hparams = dict(mask_hparams or {})
        self.num_trajectories = positive_int("num_trajectories", num_trajectories)
        self.critical_per_episode = positive_int("critical_per_episode", critical_per_episode)
        self.reexplain_every = positive_int("reexplain_every", reexplain_every, allow_zero=True)
        self.mask: PPO | None = None
        self.rnd: RndBonus | None = None
        self.blind_share: float | None = None
        self.pool_info: list[dict[str, Any]] = []

    # ---- hooks ---------------------------------------------------------------------------
    def check_env(self, spec: EnvSpec) -> None:
        explain = self.mask_steps + self.num_trajectories * spec.horizon
        if self.refine and explain >= self.refine_steps:
            raise ConfigError(
                f"method.mask_steps={self.mask_steps} + method.num_trajectories={self.num_trajectories} episodes of up to "
                f"{spec.horizon} steps can take {explain} env steps, and they count against method.refine_steps="
                f"{self.refine_steps}: nothing would be left for refinement; raise refine_steps or lower mask_steps")
        starts.check_restorable(spec, self.reset_prob)

    def env_wrapper(self, ctx):
        return starts.wrapper(self.reset_prob, ctx.seed)

    def vec_wrapper(self, ctx):
        if self.rnd_weight <= 0:
            return None

        def wrap(v):
            self.rnd = RndBonus(v, self.rnd_weight, seed=ctx.seed * 31 + 17, **self.rnd_settings)
            return self.rnd

        return wrap

    def begin_refinement(self, ctx, model, venv, files: Path, state: dict[str, Any]) -> None:
        self.ctx, self.model, self.venv = ctx, model, venv
        self.updates = int(state.get("updates", 0))
        self.blind_share = state.get("blind_share")
        self.pool_info = list(state.get("pool", []))
        if (files / "mask.zip").exists():
            self.mask = PPO.load(str(files / "mask.zip"), device=self.device)
        if self.rnd is not None and (files / "rnd.pt").exists():
            self.rnd.load_state_dict(th.load(files / "rnd.pt", weights_only=False))
        if not any(s.pool for s in starts_of(venv)):  # a fresh refinement (a resumed one got its pool back)
            self._explain()

    def callbacks(self, ctx, model, venv, stop_at: int):
        out = [RndCallback(self.rnd)] if self.rnd is not None else []

        def after_rollout(rollouts: int) -> None:
            self.updates = rollouts
            k = self.reexplain_every
            if k and rollouts % k == 0 and ctx.counter.steps < stop_at:
                self._explain()

        return [*out, CountRollouts(after_rollout, self.updates)]

    def _sync(self) -> None:
        layers = starts_of(self.venv)
        self.counts["critical_starts"] = sum(s.pool_starts for s in layers)
        self.counts["resets"] = sum(s.resets for s in layers)

    def point(self) -> dict[str, Any]:
        self._sync()
        return {"critical_pool": len(self.pool_info), "blind_share": self.blind_share}

    def state(self) -> dict[str, Any]:
        self._sync()
        return {"updates": self.updates, "blind_share": self.blind_share, "pool": self.pool_info}

    def write_files(self, folder: Path) -> None:
        if self.mask is not None:
            self.mask.save(str(folder / "mask.zip"))
        if self.rnd is not None:
            th.save(self.rnd.state_dict(), folder / "rnd.pt")

    def summary(self) -> dict[str, Any]:
        self._sync()
        resets = self.counts["resets"]
        return {"explanation": {**self.counts, "reset_prob": self.reset_prob, "rnd_weight": self.rnd_weight,
                                "critical_start_share": round(self.counts["critical_starts"] / resets, 6) if resets else None,
                                "blind_share": self.blind_share, "pool": self.pool_info[-20:]}}

    # ---- explanation ---------------------------------------------------------------------
    def _agent(self):
        """The current agent, greedy (as RICE explains it), and the view of an observation the
        mask network gets (the agent's normalisation)."""
        return deterministic_act(self.model, self.venv), observation_view(self.venv)

    def _explain(self) -> None:
        ctx = self.ctx
        n = self.counts["explanations"] + 1
        act, view = self._agent()
        if self.mask is None:
            before = ctx.counter.steps
            self.mask, stats = statemask.train(ctx.spec, ctx.counter, act, view, self.mask_steps, self.mask_bonus,
                                               seed=ctx.seed * 1000 + 300_000, hparams=self.mask_hparams, device=self.device)
            self.counts["mask_steps"] += ctx.counter.steps - before
            self.blind_share = round(stats["blind_share"], 6)
            log.info("StateMask trained for %d env steps; it blinded %.1f%% of the steps", stats["mask_steps"],
                     100 * stats["blind_share"])
        before = ctx.counter.steps
        episodes = run_episodes(ctx.spec, ctx.counter, act, self.num_trajectories,
                                ctx.seed * 1000 + 200_000 + n * self.num_trajectories,
                                observe=lambda obs, info: float(statemask.importance(self.mask, view(obs)[None])[0]),
                                snapshots=True)
        self.counts["explanation_steps"] += ctx.counter.steps - before
        pool, info = [], []
        for ep in episodes:
            scores = np.asarray(ep.kept)
            for t in np.argsort(-scores, kind="stable")[: self.critical_per_episode]:
                pool.append(ep.snapshots[int(t)])
                info.append({"explanation": n, "episode": ep.index, "step": int(t), "length": ep.length,
                             "importance": round(float(scores[t]), 6), "return": round(ep.ret, 3)})
        for layer in starts_of(self.venv):
            layer.set_pool(pool)
        self.pool_info = info
        self.counts["explanations"] = n
        log.info("explanation %d: %d episodes (returns %s); critical steps %s", n, len(episodes),
                 [round(e.ret, 1) for e in episodes], [(i["step"], i["length"]) for i in info])

