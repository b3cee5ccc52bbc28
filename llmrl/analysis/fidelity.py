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


def measure(spec, act: Callable[[Any], Any], bases: list[Base], rankings: dict[str, list[list[int]]],
            fractions: list[float], reps: int = 3, seed: int = 0, progress: Callable[[str], None] | None = None
            ) -> list[dict[str, Any]]:
    """One row per (source, fraction): mean drop in return over episodes (each the mean of
    `reps` perturbed replays), its 95% bootstrap CI, the relative drop and how many steps were
    randomised. A source that ranks fewer than K steps of an episode randomises the ones it has;
    `random` then also gets a row with the same count per episode (`random@<source>`), so each
    source is compared with random steps of its own number."""
    rows = []
    sources = [*rankings, RANDOM]
    for fi, fraction in enumerate(fractions):
        counts: dict[str, list[int]] = {}
        for si, source in enumerate(sources):
            drops, rel, used = [], [], []
            for e, base in enumerate(bases):
                k = steps_for(fraction, base.length)
                ranked = rankings[source][e] if source != RANDOM else None
                n = k if ranked is None else min(k, len(ranked))
                counts.setdefault(source, []).append(n)
                returns = []
                for r in range(reps):
                    if ranked is None:
                        pick = np.random.default_rng([seed, e, fi, r, 7]).choice(base.length, size=n, replace=False)
                        chosen = {int(t) for t in pick}
                    else:
                        chosen = set(ranked[:n])
                    returns.append(play(spec, act, base.seed, chosen, [seed, e, fi, si, r]) if chosen else base.ret)
                drop = base.ret - float(np.mean(returns)) if n else 0.0
                drops.append(drop)
                rel.append(drop / abs(base.ret) if base.ret else float("nan"))
                used.append(n)
            rows.append(_row(source, fraction, drops, rel, used, seed))
            if progress:
                progress(f"K={fraction:.0%} {source}: drop {rows[-1]['drop_mean']:.3g}")
        for source in rankings:  # random steps, as many as each short source had
            if counts[source] == counts[RANDOM]:
                continue
            drops, rel = [], []
            for e, base in enumerate(bases):
                n = counts[source][e]
                returns = []
                for r in range(reps):
                    pick = np.random.default_rng([seed, e, fi, r, 11]).choice(base.length, size=n, replace=False) if n else []
                    returns.append(play(spec, act, base.seed, {int(t) for t in pick}, [seed, e, fi, 99, r]) if n else base.ret)
                drops.append(base.ret - float(np.mean(returns)) if n else 0.0)
                rel.append(drops[-1] / abs(base.ret) if base.ret else float("nan"))
            rows.append(_row(f"{RANDOM}@{source}", fraction, drops, rel, counts[source], seed))
    return rows


def _row(source: str, fraction: float, drops: list[float], rel: list[float], used: list[int], seed: int) -> dict[str, Any]:
    lo, hi = bootstrap_ci(np.array(drops), seed=seed)
    rel_arr = np.array(rel, dtype=float)
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
