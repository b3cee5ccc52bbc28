"""Statistics over runs with rliable (Agarwal et al., 2021): IQM and mean with 95% stratified
bootstrap confidence intervals (percentile method), performance profiles, probability of
improvement, and the sample-efficiency numbers the papers claim: env steps to reach a target."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from llmrl.analysis import rliable_compat


def final_scores(curves: pd.DataFrame, metric: str = "return_mean") -> pd.DataFrame:
    """The last reported value of `metric` per run (method, env, llm, seed)."""
    keys = ["method", "env", "llm", "seed"]
    rows = curves.dropna(subset=[metric]).sort_values("env_steps").groupby(keys, dropna=False).tail(1)
    return rows[keys + ["env_steps", metric]].rename(columns={metric: "score"}).reset_index(drop=True)


def reference_scores(scores: pd.DataFrame, low: dict[str, float], baseline: str = "ppo") -> dict[str, tuple[float, float]]:
    """Per env (low, high): low = a random policy's score (given), high = the baseline's mean final
    score in the data. Only envs where the baseline beats the random policy get a reference: a
    baseline at or below random would flip or blow up every normalised score (`unnormalised`
    says which envs and why); they stay on raw scores."""
    return {env: ref for env, ref in _references(scores, low, baseline).items() if isinstance(ref, tuple)}


def unnormalised(scores: pd.DataFrame, low: dict[str, float], baseline: str = "ppo") -> dict[str, str]:
    """Why each env without a normalisation reference has none."""
    refs = _references(scores, low, baseline)
    return {env: why for env, why in refs.items() if isinstance(why, str)} | {
        env: f"no {baseline} runs" for env in sorted(set(scores["env"]) - set(refs))}


def _references(scores: pd.DataFrame, low: dict[str, float], baseline: str) -> dict[str, tuple[float, float] | str]:
    out: dict[str, tuple[float, float] | str] = {}
    for env, high in scores[scores["method"] == baseline].groupby("env")["score"].mean().items():
        if env not in low:
            out[env] = "no random-policy score (scripts/report.py --random-scores ENV)"
        elif high <= low[env]:
            out[env] = (f"{baseline}'s mean final score {high:.4g} is not above the random policy's {low[env]:.4g}, so "
                        f"(score - random) / ({baseline} - random) would rank methods backwards")
        else:
            out[env] = (float(low[env]), float(high))
    return out


def normalise(scores: pd.DataFrame, reference: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """Adds `normalised` = (score - low) / (high - low) where a reference exists, else NaN."""
    out = scores.copy()
    out["normalised"] = [
        (s - reference[e][0]) / (reference[e][1] - reference[e][0]) if e in reference else np.nan
        for s, e in zip(out["score"], out["env"])
    ]
    return out


def score_matrices(scores: pd.DataFrame, column: str = "score") -> tuple[dict[str, np.ndarray], list[str], dict[str, list]]:
    """{method: runs x envs} for rliable, over the envs every method has, using the seeds each
    method has on all of those envs. Returns the matrices, the envs, and the seeds used."""
    data = scores.dropna(subset=[column])
    envs = sorted(set.intersection(*[set(g["env"]) for _, g in data.groupby("method")])) if len(data) else []
    matrices, seeds_used = {}, {}
    for method, g in data[data["env"].isin(envs)].groupby("method"):
        seeds = sorted(set.intersection(*[set(g[g["env"] == e]["seed"]) for e in envs]))
        if not seeds:
            continue
        table = g.pivot_table(index="seed", columns="env", values=column, aggfunc="mean").loc[seeds, envs]
        matrices[method] = table.to_numpy(dtype=float)
        seeds_used[method] = seeds
    return matrices, envs, seeds_used


MIN_RUNS_FOR_CI = 5


def ci_label(runs: int) -> str:
    """What a bootstrap interval over `runs` seeds is: with few seeds the resamples cannot leave
    the observed range (with 2 seeds the "95% CI" is the min-max), so it is not called a CI."""
    if runs >= MIN_RUNS_FOR_CI:
        return "95% CI"
    return f"range of {runs} seed{'s' if runs != 1 else ''}, not a 95% CI (fewer than {MIN_RUNS_FOR_CI})"


def interval_estimates(matrices: dict[str, np.ndarray], reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """IQM and mean per method with 95% stratified-bootstrap CIs (percentile method); `interval`
    says what the interval is worth with the number of runs at hand (see ci_label)."""
    from rliable import library as rly
    from rliable import metrics

    def aggregate(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)])

    rliable_compat.apply()
    with rliable_compat.seeded(seed) as rs:
        point, interval = rly.get_interval_estimates(matrices, aggregate, reps=reps, random_state=rs)
    rows = []
    for method in matrices:
        rows.append({"method": method, "runs": matrices[method].shape[0], "tasks": matrices[method].shape[1],
                     "iqm": point[method][0], "iqm_low": interval[method][0][0], "iqm_high": interval[method][1][0],
                     "mean": point[method][1], "mean_low": interval[method][0][1], "mean_high": interval[method][1][1],
                     "interval": ci_label(matrices[method].shape[0])})
    return pd.DataFrame(rows)


def probability_of_improvement(matrices: dict[str, np.ndarray], reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """P(X > Y) for every ordered pair of methods, with 95% CIs."""
    from rliable import library as rly
    from rliable import metrics

    pairs = {f"{a},{b}": (matrices[a], matrices[b]) for a in matrices for b in matrices if a != b}
    if not pairs:
        return pd.DataFrame(columns=["method", "over", "probability", "low", "high"])
    rliable_compat.apply()
    with rliable_compat.seeded(seed) as rs:
        point, interval = rly.get_interval_estimates(pairs, metrics.probability_of_improvement, reps=reps, random_state=rs)
    rows = []
    for k in pairs:
        low, high = np.asarray(interval[k], dtype=float).reshape(2, -1)[:, 0]
        rows.append({"method": k.split(",")[0], "over": k.split(",")[1],
                     "probability": float(np.ravel(point[k])[0]), "low": float(low), "high": float(high)})
    return pd.DataFrame(rows)


def performance_profiles(matrices: dict[str, np.ndarray], taus: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[dict, dict]:
    from rliable import library as rly

    rliable_compat.apply()
    with rliable_compat.seeded(seed):
        return rly.create_performance_profile(matrices, taus, reps=reps)


def steps_to_target(curves: pd.DataFrame, target: float | dict[str, float], metric: str = "return_mean") -> pd.DataFrame:
    """Per run, the env steps of the first curve point after training started (env_steps > 0: the
    untrained policy's evaluation reaches nothing) whose metric reaches the target (exactly a
    reported point; NaN if never). `target` is one number or one per env."""
    rows = []
    for (method, env, llm, seed), g in curves.groupby(["method", "env", "llm", "seed"], dropna=False):
        goal = target[env] if isinstance(target, dict) else target
        if goal is None or (isinstance(goal, float) and np.isnan(goal)):
            continue
        hit = g[g["env_steps"] > 0].sort_values("env_steps")
        hit = hit[hit[metric] >= goal]
        rows.append({"method": method, "env": env, "llm": llm, "seed": seed, "target": goal,
                     "steps": float(hit["env_steps"].iloc[0]) if len(hit) else np.nan})
    return pd.DataFrame(rows, columns=["method", "env", "llm", "seed", "target", "steps"])


def steps_ratio_to(table: pd.DataFrame, baseline: str = "ppo") -> pd.DataFrame:
    """Median steps-to-target per method and env, and its ratio to the baseline's (< 1 = fewer)."""
    med = table.groupby(["method", "env"])["steps"].agg(median="median", reached=lambda s: int(s.notna().sum()),
                                                         runs="size").reset_index()
    # over every run, a run that never reached the target counting as infinitely many steps: the median
    # time to target and its 95% percentile-bootstrap CI over seeds (inf = not reached at that quantile)
    spans = {key: _median_ci(g.to_numpy(dtype=float)) for key, g in table.groupby(["method", "env"])["steps"]}
    med["median_all"] = [spans[(m, e)][0] for m, e in zip(med["method"], med["env"])]
    med["median_all_low"] = [spans[(m, e)][1] for m, e in zip(med["method"], med["env"])]
    med["median_all_high"] = [spans[(m, e)][2] for m, e in zip(med["method"], med["env"])]
    base = med[med["method"] == baseline].set_index("env")["median"]
    med["ratio_to_" + baseline] = [m / base[e] if e in base and base[e] > 0 else np.nan for m, e in zip(med["median"], med["env"])]
    return med


def _median_ci(steps: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    x = np.where(np.isnan(steps), np.inf, steps)
    if len(x) < 2:
        return float(np.median(x)) if len(x) else np.nan, np.nan, np.nan
    rng = np.random.default_rng(seed)
    medians = np.median(x[rng.integers(0, len(x), (reps, len(x)))], axis=1)
    return float(np.median(x)), float(np.percentile(medians, 2.5, method="lower")), float(np.percentile(medians, 97.5, method="higher"))


def curve_on_grid(curves: pd.DataFrame, grid: np.ndarray, metric: str = "return_mean") -> dict[tuple, np.ndarray]:
    """Each run's metric on a common env-steps grid, carrying the last reported value forward
    (NaN before the first point and after the last, so a short run is not drawn as if it had
    gone on), so runs with different evaluation steps can be aggregated."""
    out: dict[tuple, np.ndarray] = {}
    for key, g in curves.dropna(subset=[metric]).groupby(["method", "env", "seed"]):
        g = g.sort_values("env_steps")
        idx = np.searchsorted(g["env_steps"].to_numpy(), grid, side="right") - 1
        values = g[metric].to_numpy(dtype=float)
        inside = (idx >= 0) & (grid <= g["env_steps"].iloc[-1])
        out[key] = np.where(inside, values[np.clip(idx, 0, None)], np.nan)
    return out


def iqm_band(runs: np.ndarray, reps: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IQM over runs (rows) at each grid column, with a 95% bootstrap band over runs."""
    from scipy.stats import trim_mean

    rng = np.random.default_rng(seed)
    center = np.array([trim_mean(col[~np.isnan(col)], 0.25) if np.any(~np.isnan(col)) else np.nan for col in runs.T])
    if runs.shape[0] < 2:
        return center, center, center
    samples = []
    for _ in range(reps):
        pick = runs[rng.integers(0, runs.shape[0], runs.shape[0])]
        samples.append([trim_mean(c[~np.isnan(c)], 0.25) if np.any(~np.isnan(c)) else np.nan for c in pick.T])
    samples = np.array(samples)
    return center, np.nanpercentile(samples, 2.5, axis=0), np.nanpercentile(samples, 97.5, axis=0)


def summary_of_llm_use(runs: pd.DataFrame) -> pd.DataFrame:
    cols = ["llm_calls", "llm_tokens", "llm_cost_usd"]
    data = runs.dropna(subset=["llm_calls"]) if "llm_calls" in runs else runs.iloc[0:0]
    if data.empty:
        return pd.DataFrame(columns=["method", "env", "llm", "runs", *cols])
    agg: dict[str, Any] = {c: "mean" for c in cols}
    out = data.groupby(["method", "env", "llm"])[cols].agg(agg).reset_index()
    out.insert(3, "runs", data.groupby(["method", "env", "llm"]).size().to_numpy())
    return out
