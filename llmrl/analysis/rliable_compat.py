"""rliable 1.2.0 passes `random_state=` to arch's bootstraps; arch 8 (the first release that
imports with pandas 3) renamed it `seed=`. This adapter lets arch's two bootstrap classes that
rliable builds on accept the old name again, and does nothing where it is not needed. rliable
draws its resampling indices from numpy's global generator, so `seeded()` seeds that too."""
from __future__ import annotations

import contextlib
import inspect

import numpy as np


def _accept_random_state(cls) -> None:
    original = cls.__init__
    if "random_state" in inspect.signature(original).parameters or getattr(original, "_accepts_random_state", False):
        return

    def __init__(self, *args, random_state=None, **kwargs):
        if "seed" not in kwargs:  # arch's own subclasses call up with seed= already
            kwargs["seed"] = random_state
        original(self, *args, **kwargs)

    __init__._accepts_random_state = True
    cls.__init__ = __init__


def apply() -> None:
    import arch.bootstrap as arch_bs

    _accept_random_state(arch_bs.IIDBootstrap)
    _accept_random_state(arch_bs.IndependentSamplesBootstrap)


@contextlib.contextmanager
def seeded(seed: int):
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield np.random.RandomState(seed)
    finally:
        np.random.set_state(state)
