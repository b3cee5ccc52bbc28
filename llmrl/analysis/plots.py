"""Figures (PNG and SVG, matplotlib): sample-efficiency curves per env (IQM over seeds with a 95%
bootstrap band, all methods overlaid, env steps on x, log-x optional), the aggregate curve over
envs (normalised scores), performance profiles and probability of improvement."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from llmrl.analysis.stats import curve_on_grid, iqm_band  # noqa: E402


def _save(fig, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        path = out / f"{name}.{ext}"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def _grid(steps: np.ndarray, points: int, log_x: bool) -> np.ndarray:
    hi = float(np.nanmax(steps)) if len(steps) else 1.0
    lo = max(1.0, float(np.nanmin(steps[steps > 0]))) if np.any(steps > 0) else 1.0
    base = np.geomspace(lo, hi, points) if log_x and hi > lo else np.linspace(0, hi, points)
    return np.unique(np.concatenate([base, steps]))  # every reported step too, so no point is smoothed away


def env_curves(curves: pd.DataFrame, out: Path, metric: str = "return_mean", log_x: bool = False, points: int = 60) -> list[Path]:
    paths = []
    for env, g in curves.dropna(subset=[metric]).groupby("env"):
        grid = _grid(g["env_steps"].to_numpy(dtype=float), points, log_x)
        on_grid = curve_on_grid(g, grid, metric)
        fig, ax = plt.subplots(figsize=(6, 4))
        for method in sorted(g["method"].unique()):
            runs = np.array([v for (m, _, _), v in on_grid.items() if m == method])
            center, low, high = iqm_band(runs)
            ax.plot(grid, center, label=f"{method} ({len(runs)} seeds)")
            ax.fill_between(grid, low, high, alpha=0.2)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(f"{metric} (IQM, 95% CI)")
        ax.set_title(env)
        if log_x:
            ax.set_xscale("log")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        paths += _save(fig, out, f"curve_{env}")
    return paths


def aggregate_curve(curves: pd.DataFrame, reference: dict[str, tuple[float, float]], out: Path,
                    metric: str = "return_mean", points: int = 60) -> list[Path]:
    """Normalised score vs env steps as a fraction of each env's budget, IQM over runs x envs."""
    data = curves[curves["env"].isin(reference)].dropna(subset=[metric]).copy()
    if data.empty:
        return []
    data["normalised"] = [(v - reference[e][0]) / (reference[e][1] - reference[e][0]) for v, e in zip(data[metric], data["env"])]
    data["fraction"] = data["env_steps"] / data.groupby("env")["env_steps"].transform("max")
    grid = np.linspace(0, 1, points)
    fig, ax = plt.subplots(figsize=(6, 4))
    for method, g in data.groupby("method"):
        runs = np.array(list(curve_on_grid(g.assign(env_steps=g["fraction"]), grid, "normalised").values()))
        center, low, high = iqm_band(runs)
        ax.plot(grid, center, label=method)
        ax.fill_between(grid, low, high, alpha=0.2)
    ax.set_xlabel("fraction of the env's budget (env steps)")
    ax.set_ylabel("normalised score (IQM, 95% CI)")
    ax.set_title("all envs with a reference")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, out, "aggregate_curve")


def profiles(taus: np.ndarray, point: dict, interval: dict, out: Path) -> list[Path]:
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in point:
        ax.plot(taus, point[method], label=method)
        ax.fill_between(taus, interval[method][0], interval[method][1], alpha=0.2)
    ax.set_xlabel("normalised score tau")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, out, "performance_profile")


def improvement(table: pd.DataFrame, out: Path) -> list[Path]:
    if table.empty:
        return []
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.4 * len(table)))
    labels = [f"P({a} > {b})" for a, b in zip(table["method"], table["over"])]
    y = np.arange(len(table))
    ax.errorbar(table["probability"], y, xerr=[table["probability"] - table["low"], table["high"] - table["probability"]],
                fmt="o", capsize=3)
    ax.axvline(0.5, color="grey", ls="--", lw=1)
    ax.set_yticks(y, labels)
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability of improvement (95% CI)")
    return _save(fig, out, "probability_of_improvement")
