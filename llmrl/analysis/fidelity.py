"""Are the critical states critical? The fidelity test of the StateMask/RICE line of work: take
an agent's episodes, randomise its actions at the K steps an explanation ranks highest (the agent
acts as usual everywhere else, reacting to where the perturbation led it), and measure the drop
in return; compare with K steps drawn at random. An explanation whose top steps matter more than
random ones gives a larger drop.

Independent of where the rankings come from (the LLM's identification, a StateMask network,
anything else): `measure` takes, per source, one ranked list of steps per episode. Episodes are
replayed by their reset seed with the greedy agent, so the unperturbed return is re-measured
rather than trusted; the random actions come from generators seeded per (episode, source, K,
repetition), so a table is reproducible."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

RANDOM = "random"


@dataclass
class Base:
    """One unperturbed episode: its reset seed, length and return."""

    seed: int
    length: int
    ret: float


def steps_for(fraction: float, length: int) -> int:
    """K for a share of an episode: at least one step."""
    return max(1, math.ceil(fraction * length))


def play(spec, act: Callable[[Any], Any], seed: int, randomise: set[int], rng_seed: list[int]) -> float:
    """The return of one episode from `seed`, with uniformly random actions at `randomise`."""
    env = spec.make(seed=seed)
    space = env.action_space
    space.seed(int(np.random.SeedSequence(rng_seed).generate_state(1)[0]))
    try:
        obs, _ = env.reset(seed=seed)
        total, t, done = 0.0, 0, False
        while not done:
            action = space.sample() if t in randomise else act(obs)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            t += 1
            done = terminated or truncated
        return total
    finally:
        env.close()


def bootstrap_ci(values: np.ndarray, reps: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean over episodes."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (reps, len(values)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _drop(spec, act, base: Base, n: int, reps: int, pick: Callable[[int], set[int]], rng: Callable[[int], list[int]]) -> float:
    """Unperturbed minus mean perturbed return over `reps` replays; `pick(r)` gives the steps
    randomised in replay r and `rng(r)` the seed of its random actions. No step, no drop."""
    if not n:
        return 0.0
    return base.ret - float(np.mean([play(spec, act, base.seed, pick(r), rng(r)) for r in range(reps)]))


def measure(spec, act: Callable[[Any], Any], bases: list[Base], rankings: dict[str, list[list[int]]],
            fractions: list[float], reps: int = 3, seed: int = 0, progress: Callable[[str], None] | None = None
            ) -> list[dict[str, Any]]:
    """One row per (source, fraction): mean drop in return over episodes (each the mean of
    `reps` perturbed replays), its 95% bootstrap CI, the relative drop and how many steps were
    randomised. A source that ranks fewer than K steps of an episode randomises the ones it has;
    `random` then also gets a row with the same count per episode (`random@<source>`), so each
    source is compared with random steps of its own number."""
    def random_steps(e: int, fi: int, n: int, length: int, salt: int) -> Callable[[int], set[int]]:
        return lambda r: {int(t) for t in np.random.default_rng([seed, e, fi, r, salt]).choice(length, size=n, replace=False)}

    rows = []
    for fi, fraction in enumerate(fractions):
        counts: dict[str, list[int]] = {}
        for si, source in enumerate([*rankings, RANDOM]):
            drops = []
            for e, base in enumerate(bases):
                k = steps_for(fraction, base.length)
                if source == RANDOM:
                    n, pick = k, random_steps(e, fi, k, base.length, 7)
                else:
                    n = min(k, len(rankings[source][e]))
                    pick = lambda r, chosen=set(rankings[source][e][:n]): chosen
                counts.setdefault(source, []).append(n)
                drops.append(_drop(spec, act, base, n, reps, pick, lambda r, e=e, si=si: [seed, e, fi, si, r]))
            rows.append(_row(source, fraction, drops, counts[source], bases, seed))
            if progress:
                progress(f"K={fraction:.0%} {source}: drop {rows[-1]['drop_mean']:.3g}")
        for source in rankings:  # random steps, as many as each short source had
            if counts[source] == counts[RANDOM]:
                continue
            drops = [_drop(spec, act, base, n, reps, random_steps(e, fi, n, base.length, 11),
                           lambda r, e=e: [seed, e, fi, 99, r])
                     for e, (base, n) in enumerate(zip(bases, counts[source]))]
            rows.append(_row(f"{RANDOM}@{source}", fraction, drops, counts[source], bases, seed))
    return rows


def _row(source: str, fraction: float, drops: list[float], used: list[int], bases: list[Base], seed: int) -> dict[str, Any]:
    lo, hi = bootstrap_ci(np.array(drops), seed=seed)
    rel_arr = np.array([d / abs(b.ret) if b.ret else float("nan") for d, b in zip(drops, bases)], dtype=float)
    return {"source": source, "fraction": fraction, "episodes": len(drops), "steps_randomised": float(np.mean(used)),
            "drop_mean": float(np.mean(drops)), "drop_low": lo, "drop_high": hi,
            "relative_drop": float(np.nanmean(rel_arr)) if np.isfinite(rel_arr).any() else None}


def markdown(rows: list[dict[str, Any]]) -> str:
    head = "| K (share of episode) | source | steps randomised (mean) | drop in return | 95% CI | relative drop |"
    lines = [head, "|---|---|---|---|---|---|"]
    for r in rows:
        rel = "" if r["relative_drop"] is None else f"{r['relative_drop']:.1%}"
        lines.append(f"| {r['fraction']:.0%} | {r['source']} | {r['steps_randomised']:.1f} | {r['drop_mean']:.3g} | "
                     f"[{r['drop_low']:.3g}, {r['drop_high']:.3g}] | {rel} |")
    return "\n".join(lines)
