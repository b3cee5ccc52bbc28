"""One place that seeds every source of randomness, so the same seed gives the same curve."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int, deterministic_torch: bool = True) -> None:
    """Seed Python, NumPy and torch; on CPU, deterministic kernels make PPO runs repeat exactly."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    if deterministic_torch:
        torch.use_deterministic_algorithms(True, warn_only=True)


def eval_seeds(seed: int, offset: int, episodes: int) -> list[int]:
    """Evaluation episodes get their own seeds, disjoint from training's (train uses seed + env index)."""
    return [seed + offset + i for i in range(episodes)]
