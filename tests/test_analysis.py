"""Aggregation, statistics, tables and plots on synthetic run directories with known curves."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from scipy.stats import trim_mean

from llmrl.analysis import stats
from llmrl.analysis.aggregate import collect
from llmrl.analysis.report import build

# method -> env -> seed -> final return; curves rise linearly from 0 to the final value over 4 points
FINALS = {
    "ppo": {"env_a": {0: 100.0, 1: 110.0, 2: 90.0, 3: 105.0}, "env_b": {0: 10.0, 1: 12.0, 2: 8.0, 3: 11.0}},
    "promptpo": {"env_a": {0: 150.0, 1: 160.0, 2: 40.0, 3: 155.0}, "env_b": {0: 14.0, 1: 6.0, 2: 13.0, 3: 15.0}},
}
STEPS = {"ppo": [0, 1000, 2000, 3000], "promptpo": [50, 100, 150, 200]}
RANDOM = {"env_a": 0.0, "env_b": 2.0}


def make_run(root, method, env, seed, final, summary=True, llm="none"):
    d = root / env / method / llm / f"seed_{seed}"
    d.mkdir(parents=True)
    cfg = {"experiment_name": "synthetic", "seed": seed, "method": {"name": method}, "env": {"name": env}, "llm": {"name": llm}}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    rows = ["env_steps,return_mean,return_std,success_rate,train_return,eval_episodes,llm_calls,llm_tokens,llm_cost_usd,wall_s"]
    for k, s in enumerate(STEPS[method]):
        llm_cols = f"{(k + 1) * 10},{(k + 1) * 1000},{(k + 1) * 0.01}" if method == "promptpo" else ",,"
        rows.append(f"{s},{final * k / 3},1.0,,,5,{llm_cols},{k}")
    (d / "curve.csv").write_text("\n".join(rows) + "\n")
    if summary:
        (d / "summary.json").write_text(json.dumps({"status": "done", "final_return": final, "error": None,
                                                    "llm_calls": 40 if method == "promptpo" else None}))
    return d


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "sweep"
    for method, envs in FINALS.items():
        for env, seeds in envs.items():
            for seed, final in seeds.items():
                make_run(root, method, env, seed, final, llm="local" if method == "promptpo" else "none")
    make_run(root, "ppo", "env_a", 9, 1.0, summary=False)  # a killed run: must be listed, not dropped
    return root


def test_aggregated_table_is_right(sweep):
    runs, curves = collect([sweep])
    assert len(runs) == 17 and len(curves) == 17 * 4
    incomplete = runs[runs["status"] == "incomplete"]
    assert len(incomplete) == 1 and incomplete.iloc[0]["seed"] == 9 and "no summary.json" in incomplete.iloc[0]["error"]
    row = curves[(curves.method == "promptpo") & (curves.env == "env_b") & (curves.seed == 1)].sort_values("env_steps")
    assert row["return_mean"].tolist() == pytest.approx([0, 2, 4, 6]) and row["llm_calls"].tolist() == [10, 20, 30, 40]
    assert set(runs[runs.method == "promptpo"]["llm"]) == {"local"} and set(runs[runs.method == "ppo"]["llm"]) == {"none"}


def test_iqm_and_cis_match_an_independent_computation(sweep):
    _, curves = collect([sweep])
    scores = stats.final_scores(curves)
    scores = scores[scores.seed != 9]
    reference = stats.reference_scores(scores, RANDOM, "ppo")
    assert reference["env_a"] == (0.0, pytest.approx(101.25)) and reference["env_b"] == (2.0, pytest.approx(10.25))
    scores = stats.normalise(scores, reference)
    matrices, envs, seeds = stats.score_matrices(scores, "normalised")
    assert envs == ["env_a", "env_b"] and seeds["ppo"] == [0, 1, 2, 3]
    est = stats.interval_estimates(matrices, reps=4000, seed=1).set_index("method")

    rng = np.random.default_rng(7)
    for method, m in matrices.items():
        expected = [(FINALS[method][e][s] - reference[e][0]) / (reference[e][1] - reference[e][0]) for s in range(4) for e in envs]
        assert sorted(m.ravel()) == pytest.approx(sorted(expected))
        assert est.loc[method, "iqm"] == pytest.approx(trim_mean(m.ravel(), 0.25))
        assert est.loc[method, "mean"] == pytest.approx(m.mean())
        # stratified bootstrap: resample runs within each task, independently of rliable
        boot = []
        for _ in range(4000):
            sample = np.stack([m[rng.integers(0, m.shape[0], m.shape[0]), t] for t in range(m.shape[1])], axis=1)
            boot.append(trim_mean(sample.ravel(), 0.25))
        low, high = np.percentile(boot, [2.5, 97.5])
        spread = m.max() - m.min()
        assert abs(est.loc[method, "iqm_low"] - low) < 0.05 * spread
        assert abs(est.loc[method, "iqm_high"] - high) < 0.05 * spread


def test_steps_to_target_is_exact(sweep):
    _, curves = collect([sweep])
    table = stats.steps_to_target(curves, {"env_a": 100.0, "env_b": 12.0})
    got = table.set_index(["method", "env", "seed"])["steps"]
    # ppo env_a seed 0 reaches 100 only at its last point (100 * 3/3); seed 1 (110) at k=3 too (73.3 < 100 at k=2)
    assert got[("ppo", "env_a", 0)] == 3000 and got[("ppo", "env_a", 1)] == 3000
    assert np.isnan(got[("ppo", "env_a", 2)])  # 90 never reaches 100
    assert got[("promptpo", "env_a", 0)] == 150  # 150 * 2/3 = 100 at the third point
    assert got[("promptpo", "env_b", 3)] == 200  # 15 * 2/3 = 10 < 12, so only the last point (15) reaches it
    ratio = stats.steps_ratio_to(table, "ppo").set_index(["method", "env"])
    assert ratio.loc[("ppo", "env_a"), "reached"] == 3 and ratio.loc[("ppo", "env_a"), "runs"] == 5  # seeds 0, 1, 3 of 0-3 and 9


def test_report_and_plots_are_written_and_not_blank(sweep, tmp_path):
    import matplotlib.image as mpimg

    out = tmp_path / "results"
    report = build([sweep], out, RANDOM, "ppo", "Synthetic", "notes here", reps=500)
    text = report.read_text()
    assert "## Runs that did not finish" in text and "incomplete" in text
    assert "## Aggregate (normalised scores)" in text and "Probability of improvement" in text
    assert "## Per env: IQM and mean" in text
    assert "## Env steps to reach the baseline's final score" in text and "## LLM use per run" in text
    for name in ("curve_env_a", "curve_env_b", "aggregate_curve", "performance_profile", "probability_of_improvement"):
        png = out / "figures" / f"{name}.png"
        assert png.is_file() and (out / "figures" / f"{name}.svg").is_file()
        pixels = mpimg.imread(png)[..., :3]
        non_white = (pixels < 0.95).any(axis=-1).mean()
        assert 0.01 < non_white < 0.9, f"{name} looks blank ({non_white:.3f} non-white)"
        assert f"figures/{name}.png" in text
    assert (out / "final_scores.tex").read_text().startswith(r"\begin{table}")


def _runs_with(root, finals: dict, steps: dict):
    """Synthetic runs: method -> env -> seed -> list of (env_steps, return) points."""
    for method, envs in finals.items():
        for env, seeds in envs.items():
            for seed, points in seeds.items():
                d = root / env / method / "none" / f"seed_{seed}"
                d.mkdir(parents=True)
                cfg = {"experiment_name": "s", "seed": seed, "method": {"name": method}, "env": {"name": env}, "llm": {"name": "none"}}
                (d / "config.yaml").write_text(yaml.safe_dump(cfg))
                rows = ["env_steps,return_mean"] + [f"{s},{r}" for s, r in points]
                (d / "curve.csv").write_text("\n".join(rows) + "\n")
                (d / "summary.json").write_text(json.dumps({"status": "done", "final_return": points[-1][1]}))


def test_a_baseline_below_random_is_not_a_normalisation_reference(tmp_path):
    """Pendulum at small budgets: PPO (-1370) below the random policy (-1134), SAC 450 better than PPO.
    Normalising by (PPO - random) would flip the sign and rank PPO above SAC."""
    pts = lambda final: [(0, -1500.0), (1000, final)]  # noqa: E731
    finals = {"ppo": {"pendulum": {s: pts(-1370.0 + s) for s in range(3)}, "env_ok": {s: pts(100.0 + s) for s in range(3)}},
              "sac": {"pendulum": {s: pts(-920.0 + s) for s in range(3)}, "env_ok": {s: pts(80.0 + s) for s in range(3)}}}
    _runs_with(tmp_path / "sweep", finals, {})
    _, curves = collect([tmp_path / "sweep"])
    scores = stats.final_scores(curves)
    random = {"pendulum": -1134.0, "env_ok": 0.0}
    reference = stats.reference_scores(scores, random, "ppo")
    assert "pendulum" not in reference and "env_ok" in reference
    why = stats.unnormalised(scores, random, "ppo")
    assert "not above the random policy's -1134" in why["pendulum"]
    matrices, envs, _ = stats.score_matrices(stats.normalise(scores, reference), "normalised")
    assert envs == ["env_ok"]  # the aggregate stands on the env with a valid reference only
    poi = stats.probability_of_improvement(matrices, reps=200).set_index(["method", "over"])
    assert poi.loc[("ppo", "sac"), "probability"] == 1.0  # ppo is better on env_ok, as the raw scores say
    report = build([tmp_path / "sweep"], tmp_path / "out", random, "ppo", "t", reps=200).read_text()
    assert "- pendulum: ppo's mean final score" in report


def test_steps_to_target_ignores_the_untrained_evaluation(tmp_path):
    # an untrained policy that happens to score 500 at step 0 has not reached anything yet
    finals = {"ppo": {"cartpole": {0: [(0, 500.0), (1000, 20.0), (2000, 480.0), (3000, 500.0)]}}}
    _runs_with(tmp_path / "sweep", finals, {})
    _, curves = collect([tmp_path / "sweep"])
    table = stats.steps_to_target(curves, {"cartpole": 475.0})
    assert table["steps"].tolist() == [2000.0]


def test_intervals_over_few_seeds_are_labelled_as_ranges():
    two = {"a": np.array([[1.0], [3.0]]), "b": np.array([[2.0], [2.5]])}
    est = stats.interval_estimates(two, reps=500).set_index("method")
    assert est.loc["a", "interval"] == "range of 2 seeds, not a 95% CI (fewer than 5)"
    assert 1.0 <= est.loc["a", "iqm_low"] <= est.loc["a", "iqm_high"] <= 3.0
    five = {"a": np.arange(5.0).reshape(5, 1)}
    assert stats.interval_estimates(five, reps=200).loc[0, "interval"] == "95% CI"
