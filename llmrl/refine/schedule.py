"""Learning-rate and clip-range schedules across the two phases of a refinement run.

SB3 calls a schedule with the remaining progress of the current `learn()` (1 at its start, 0 at
its end). A refinement run has two learn phases (pre-training, refinement); with
`schedule: continue` one schedule spans both, as one PPO run of pretrain_steps + refine_steps
would: pre-training covers global progress 1 -> f and refinement f -> 0, with
f = refine_steps / (pretrain_steps + refine_steps). A decaying schedule (Atari's lin_2.5e-4)
then goes on from where pre-training left it instead of restarting at full rate.
`schedule: restart` gives each phase the whole schedule (1 -> 0), SB3's behaviour when a
saved agent is trained again."""
from __future__ import annotations

from typing import Any, Callable

SCHEDULED = ("learning_rate", "clip_range", "clip_range_vf")
MODES = ("continue", "restart")


class Segment:
    """`schedule` of global progress, as seen through one phase's own progress (a class, not
    a closure, so SB3 pickles it into model.zip and a resumed run gets it back)."""

    def __init__(self, schedule: Callable[[float], float], start: float, end: float) -> None:
        self.schedule, self.start, self.end = schedule, float(start), float(end)

    def __call__(self, progress_remaining: float) -> float:
        return float(self.schedule(self.end + (self.start - self.end) * progress_remaining))


def phases(mode: str, pretrain_steps: int, refine_steps: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """(start, end) of global progress for pre-training and for refinement."""
    if mode == "restart":
        return (1.0, 0.0), (1.0, 0.0)
    f = refine_steps / (pretrain_steps + refine_steps)
    return (1.0, f), (f, 0.0)


def for_phase(kwargs: dict[str, Any], span: tuple[float, float]) -> dict[str, Any]:
    """SB3 constructor kwargs with every callable schedule seen through `span`."""
    out = dict(kwargs)
    for key in SCHEDULED:
        if callable(out.get(key)):
            out[key] = Segment(out[key], *span)
    return out


def value_at(kwargs: dict[str, Any], key: str, progress: float) -> float | None:
    """The value of `key` at global progress `progress` (constants are themselves)."""
    v = kwargs.get(key)
    if v is None:
        return None
    return float(v(progress)) if callable(v) else float(v)
