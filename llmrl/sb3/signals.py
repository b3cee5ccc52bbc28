"""SB3's own training signals (losses, approximate KL, entropy, clip fraction, fps, episode
returns of the training envs) into the run's tracker, against the shared env_steps: the run
directory's metrics.jsonl and W&B, beside the curve."""
from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.logger import KVWriter, Logger


class TrackerOutput(KVWriter):
    def __init__(self, ctx) -> None:
        self.ctx = ctx

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        numbers = {k: float(v) for k, v in key_values.items() if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}
        if numbers:
            self.ctx.tracker.log_metrics(self.ctx.counter.steps, numbers)

    def close(self) -> None:
        pass


def attach(model, ctx) -> None:
    """Route the model's logger to the tracker (SB3 keeps a logger set this way across learn())."""
    model.set_logger(Logger(folder=None, output_formats=[TrackerOutput(ctx)]))


def flush(model) -> None:
    """SB3 writes an update's signals at the start of the next iteration; the last update's
    would never be written. Called after learn()."""
    model.logger.dump(step=model.num_timesteps)
