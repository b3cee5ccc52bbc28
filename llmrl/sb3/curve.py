"""Curve points and checkpoints on SB3's step hook: the CleanRL loop's
`if global_step % eval_every == 0: evaluate, log, save` written once as a callback, shared by
every SB3-based method. Methods add their own columns, files and stopping rule through hooks."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecNormalize

from llmrl.evaluation import evaluate
from llmrl.sb3 import snapshot
from llmrl.sb3.venv import deterministic_act


class BudgetReached(Exception):
    """Raised between rollouts once the shared counter has reached `stop_at`: learn() ends there."""


class CurveCallback(BaseCallback):
    """Every `eval_every` env steps (the shared counter, not SB3's own count): evaluate the
    greedy policy on the held-out seeds, log a point, and write a checkpoint at the next point
    where the training loop is between rollouts (with `llmrl.sb3.snapshot`'s state, a resumed run
    continues exactly as the uninterrupted one would).

    Hooks: `extra_point()` adds method columns to each point; `write_files(model, folder)` adds
    files to a checkpoint; `extra_state()` adds keys to its state; `stop_at` ends learning once
    the counter reaches it (methods whose own rollouts also spend env steps): mid-rollout by
    returning False, between rollouts by raising BudgetReached (the caller catches it);
    `eval_wrap` wraps the evaluation env where the agent acts through a wrapper (a residual)."""

    def __init__(
        self,
        ctx,
        venv,
        eval_every: int,
        next_eval: int,
        checkpoint: bool = True,
        extra_point: Callable[[], dict[str, Any]] | None = None,
        write_files: Callable[[Any, Path], None] | None = None,
        extra_state: Callable[[], dict[str, Any]] | None = None,
        stop_at: int | None = None,
        eval_wrap: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__()
        self.ctx, self.venv = ctx, venv
        self.eval_every = eval_every
        self.next_eval = next_eval
        self.write_checkpoints = checkpoint
        self._extra_point = extra_point or dict
        self._write_files = write_files
        self._extra_state = extra_state or dict
        self.stop_at = stop_at
        self.eval_wrap = eval_wrap
        self.eval_wall_s = 0.0  # time spent evaluating (this process), reported in the summary
        self._save_due = False

    def evaluate_and_log(self, replace_last: bool = False, at: tuple[int, ...] = ()) -> None:
        """One evaluation of the current policy, logged at the current step count, or at each
        of `at` (boundaries passed under this same policy)."""
        at = at or (self.ctx.counter.steps,)
        start = time.perf_counter()
        result = evaluate(self.ctx.spec, deterministic_act(self.model, self.venv), self.ctx.eval_seeds(), self.eval_wrap)
        self.eval_wall_s += time.perf_counter() - start
        extra = self._extra_point()
        for i, steps in enumerate(at):
            self.ctx.tracker.log_point(env_steps=steps, replace_last=replace_last and i == 0, **result.point(), **extra)
        self._evaluated_updates = getattr(self.model, "_n_updates", None)
        self._save_due = self.write_checkpoints

    def _on_rollout_start(self) -> None:
        # Steps taken since the last step hook (resets inside learn's set-up, a jump-start roll-in, a
        # method's own rollouts) may have passed boundaries: their points come before the checkpoint,
        # so a resumed run never finds a point beyond its checkpoint's boundaries
        points = self.ctx.tracker.points
        if not points or self.ctx.counter.steps > points[-1]["env_steps"]:
            self._log_passed(self.ctx.counter.steps)
        if self._save_due:  # between two rollouts: nothing half-collected to lose
            self.save(self.ctx.counter.steps)
        if self.stop_at is not None and self.ctx.counter.steps >= self.stop_at:
            raise BudgetReached  # before the rollout's first step: not one step over the budget

    def save(self, steps: int) -> None:
        self._save_due = False

        def write(folder: Path) -> None:
            self.model.save(str(folder / "model.zip"))
            if isinstance(self.venv, VecNormalize):
                self.venv.save(str(folder / "vecnormalize.pkl"))
            if self._write_files is not None:
                self._write_files(self.model, folder)
            snapshot.save(folder, self.venv)

        state = {"env_steps": steps, "next_eval": self.next_eval, "wall_s": self.ctx.tracker.wall_s, **self._extra_state()}
        self.ctx.checkpoints.save(write, state)

    def _on_training_start(self) -> None:
        if not self.ctx.tracker.points:  # the untrained policy is the curve's first point
            self.next_eval = self.eval_every
            self.evaluate_and_log()

    def _on_step(self) -> bool:
        steps = self.ctx.counter.steps
        if steps % 256 < self.training_env.num_envs:
            self.ctx.tracker.progress(steps)
        self._log_passed(steps)
        if self.stop_at is None or steps < self.stop_at:
            return True
        # at the budget: a rollout that ends exactly here is still trained on
        buf = getattr(self.model, "rollout_buffer", None)
        return steps == self.stop_at and buf is not None and buf.pos == buf.buffer_size - 1

    def _log_passed(self, steps: int) -> None:
        """Usually one boundary is passed (the point is at the step count). Steps spent outside
        the algorithm's rollouts (ULTRA's identification, StateMask's training, roll-ins) can pass
        several under one unchanged policy: each gets its point, at its boundary, from one evaluation."""
        if steps < self.next_eval:
            return
        passed = []
        while self.next_eval <= steps:
            passed.append(self.next_eval)
            self.next_eval += self.eval_every
        self.evaluate_and_log(at=tuple(passed) if len(passed) > 1 else ())

    def final_point(self) -> None:
        """A last point at the final step count, unless the latest point is already there, and
        the checkpoint of the finished training (so a longer budget can continue it)."""
        points = self.ctx.tracker.points
        if not points or points[-1]["env_steps"] < self.ctx.counter.steps:
            self.evaluate_and_log()
        elif getattr(self.model, "_n_updates", None) != getattr(self, "_evaluated_updates", None):
            # the last point was evaluated mid-rollout, before the final update: the final model replaces it
            self.evaluate_and_log(replace_last=True)
        if self._save_due:
            self.save(self.ctx.counter.steps)
