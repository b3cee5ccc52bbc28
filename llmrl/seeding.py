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


def derived_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed for one named piece of a run (e.g. round 3, candidate 2, attempt 0): a hash,
    so pieces of one run and the same piece of two runs draw unrelated numbers."""
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps([seed, *parts], default=str).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)
