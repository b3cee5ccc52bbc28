"""Our PPO / SAC runs against the published numbers at the same budgets (results/BASELINES.md).

rl-baselines3-zoo scores one trained agent by running it deterministically for ~150k steps and
averaging the finished episodes; the curve's last point (10 episodes) is too noisy for that
comparison (Pendulum's returns alone spread by +-100 across start states). So each run's final
agent is evaluated once more the zoo's way, the result cached beside the run, and the table is
built from those numbers: mean and IQM over seeds with 95% bootstrap CIs, the published mean,
whether it falls inside our CI, and why not where it does not."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import yaml

ZOO_EVAL_FILE = "zoo_eval.json"
# what travels to the archive (results/baselines_zoo/archive/) so the table can be rebuilt without the checkpoints
ARCHIVED_FILES = ("config.yaml", "summary.json", "curve.csv", ZOO_EVAL_FILE)


def load_published(path: Path) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


def _load_agent(run_dir: Path):
    """(spec, act on a batch of raw observations) of the run's final checkpoint."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from llmrl.sb3.venv import deterministic_act

    cfg = OmegaConf.load(run_dir / "config.yaml")
    spec = instantiate(cfg.env, _convert_="all")
    folder = run_dir / "checkpoint"
    algo = str(cfg.method.get("algo", cfg.method.name))
    classes = {"ppo": PPO, "sac": SAC}
    if algo not in classes:
        raise ValueError(f"{run_dir}: method {algo!r} is not an SB3 baseline (ppo or sac)")
    if not (folder / "model.zip").is_file():
        raise FileNotFoundError(f"{run_dir}: no checkpoint/model.zip to evaluate (did the run finish with checkpoint=true?)")
    model = classes[algo].load(str(folder / "model.zip"), device="cpu")
    norm = None
    if (folder / "vecnormalize.pkl").is_file():
        norm = VecNormalize.load(str(folder / "vecnormalize.pkl"), DummyVecEnv([lambda: spec.make()]))
    return cfg, spec, deterministic_act(model, norm)  # acts on a batch of observations as well


def evaluate_like_zoo(spec, act_batch: Callable[[np.ndarray], np.ndarray], eval_steps: int, seed: int,
                      n_envs: int = 16) -> dict[str, Any]:
    """Deterministic episodes until `eval_steps` steps have been taken, every started episode run to
    its end (stopping mid-episode would drop long episodes more often than short ones). Episodes
    run `n_envs` at a time so the policy acts on batches; each has its own derived seed."""
    from llmrl.seeding import derived_seed

    envs = [spec.make(seed=derived_seed(seed, "zoo_eval_env", i)) for i in range(n_envs)]
    started = 0
    obs: list[Any] = [None] * n_envs
    live = [False] * n_envs
    totals = [0.0] * n_envs
    returns, lengths, steps = [], [], 0
    lens = [0] * n_envs

    def start(i: int) -> None:
        nonlocal started
        obs[i], _ = envs[i].reset(seed=derived_seed(seed, "zoo_eval", started))
        started += 1
        live[i], totals[i], lens[i] = True, 0.0, 0

    try:
        for i in range(n_envs):
            start(i)
        while any(live):
            idx = [i for i in range(n_envs) if live[i]]
            actions = act_batch(np.stack([obs[i] for i in idx]))
            for k, i in enumerate(idx):
                obs[i], reward, terminated, truncated, _ = envs[i].step(actions[k])
                totals[i] += float(reward)
                lens[i] += 1
                steps += 1
                if terminated or truncated:
                    returns.append(totals[i])
                    lengths.append(lens[i])
                    live[i] = False
                    if steps < eval_steps:
                        start(i)
    finally:
        for env in envs:
            env.close()
    return {"episodes": len(returns), "steps": int(sum(lengths)), "mean": float(np.mean(returns)),
            "std": float(np.std(returns)), "returns": [round(r, 4) for r in returns]}


def zoo_evaluation(run_dir: Path, eval_steps: int, n_envs: int = 16, say: Callable[[str], None] = print) -> dict[str, Any]:
    """The run's final agent evaluated as the zoo evaluates, cached in zoo_eval.json (recomputed
    only when the checkpoint or the step count changed)."""
    run_dir = Path(run_dir)
    cache = run_dir / ZOO_EVAL_FILE
    state_file = run_dir / "checkpoint" / "state.json"
    at = json.loads(state_file.read_text()).get("env_steps") if state_file.is_file() else None
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("eval_steps") == eval_steps and (at is None or cached.get("checkpoint_env_steps") == at):
            return cached
    if at is None:
        raise FileNotFoundError(f"{run_dir}: no {ZOO_EVAL_FILE} with eval_steps={eval_steps} and no checkpoint to make one")
    cfg, spec, act = _load_agent(run_dir)
    say(f"evaluating {run_dir} ({eval_steps} steps, deterministic) ...")
    result = evaluate_like_zoo(spec, act, eval_steps, seed=int(cfg.seed) + 7_000_000, n_envs=n_envs)
    out = {"eval_steps": eval_steps, "checkpoint_env_steps": at, "deterministic": True,
           "normaliser": "training statistics, frozen", **result}
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(out))
    tmp.replace(cache)
    return out


def archive(run_dir: Path, dest_root: Path, sweep_root: Path) -> Path:
    """Copy the run's small files (no checkpoint) under dest_root, at the same relative path."""
    dest = Path(dest_root) / Path(run_dir).resolve().relative_to(Path(sweep_root).resolve())
    dest.mkdir(parents=True, exist_ok=True)
    for name in ARCHIVED_FILES:
        if (Path(run_dir) / name).is_file():
            shutil.copy2(Path(run_dir) / name, dest / name)
    return dest


def _bootstrap(values: np.ndarray, reps: int, seed: int) -> dict[str, float]:
    from llmrl.analysis.stats import interval_estimates

    est = interval_estimates({"x": values.reshape(-1, 1)}, reps=reps, seed=seed).iloc[0]
    return {k: float(est[k]) for k in ("mean", "mean_low", "mean_high", "iqm", "iqm_low", "iqm_high")} | {
        "interval": est["interval"]}


def automatic_reasons(env_id: str, ours_env_id: str, budget: int, zoo: dict[str, Any], seeds: int) -> list[str]:
    """Differences of protocol that can explain a gap by themselves."""
    reasons = []
    if env_id != ours_env_id:
        reasons.append(f"we run {ours_env_id}, the zoo {env_id} (different simulator version)")
    if budget != int(zoo["n_timesteps"]):
        reasons.append(f"budget {budget:,} vs the zoo's {int(zoo['n_timesteps']):,}")
    reasons.append(f"the zoo's number is one training run, ours {seeds} seeds")
    return reasons


def comparison(runs: pd.DataFrame, published: dict[str, Any], diagnosis: dict[str, Any], reps: int = 2000) -> pd.DataFrame:
    """One row per (env, algo) with our statistics beside the published numbers. `runs` has one
    row per run: env, algo, variant (a changed setting: never pooled with the default), seed, gym_id, budget, score (zoo-protocol mean), episodes, wall_s."""
    rows = []
    for (env, algo, variant), grp in runs.groupby(["env", "algo", "variant"], sort=True):
        scores = grp.sort_values("seed")["score"].to_numpy(dtype=float)
        stats = _bootstrap(scores, reps, seed=0)
        pub = (published.get(algo) or {}).get(env) or {}
        zoo, clean = pub.get("zoo"), pub.get("cleanrl")
        inside = None if zoo is None else bool(stats["mean_low"] <= zoo["mean"] <= stats["mean_high"])
        gym_id, budget = grp["gym_id"].iloc[0], int(grp["budget"].max())
        note = ((diagnosis.get(algo) or {}).get(env) or "").strip()
        if zoo is not None and not inside and not note:
            note = "NOT YET EXPLAINED. " + "; ".join(automatic_reasons(zoo["env_id"], gym_id, budget, zoo, len(scores)))
        rows.append({
            "env": env, "gym_id": gym_id, "algo": algo, "variant": variant, "budget": budget, "seeds": len(scores),
            "seed_list": ",".join(str(int(s)) for s in sorted(grp["seed"])),
            "per_seed": ", ".join(f"{s:.1f}" for s in scores), **stats,
            "zoo_env_id": zoo and zoo["env_id"], "zoo_budget": zoo and int(zoo["n_timesteps"]),
            "zoo_mean": zoo and zoo["mean"], "zoo_std": zoo and zoo["std"],
            "cleanrl_env_id": clean and clean["env_id"], "cleanrl_mean": clean and clean["mean"],
            "cleanrl_std": clean and clean["std"], "cleanrl_budget": clean and int(clean["n_timesteps"]),
            "zoo_inside_ci": inside, "diagnosis": note,
            "episodes_per_seed": int(grp["episodes"].min()), "wall_s_total": float(grp["wall_s"].sum()),
        })
    return pd.DataFrame(rows)


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and np.isnan(x))


def _fmt(x: Any, digits: int = 1) -> str:
    return "-" if _missing(x) else f"{x:,.{digits}f}"


def _published(mean: Any, std: Any, env_id: Any, budget: Any) -> str:
    return "-" if _missing(mean) else f"{_fmt(mean)} ± {_fmt(std)} ({env_id}, {int(budget):,})"


def markdown(table: pd.DataFrame, runs: pd.DataFrame, commands: list[str], sources: dict[str, str], eval_steps: int,
             reps: int = 2000) -> str:
    lines = [
        "# Baselines against rl-baselines3-zoo",
        "",
        "Written by `scripts/baselines_table.py` (`make report` regenerates it); nothing here is edited by hand except",
        "the diagnoses, which come from `results/baselines_zoo/diagnosis.yaml`.",
        "",
        f"**Protocol.** Each run's final agent is evaluated as the zoo's benchmark does: deterministic actions, the",
        f"training normaliser frozen, episodes until {eval_steps:,} steps (every started episode finished). The score",
        "of a run is the mean return of those episodes; the table's statistics are over seeds: mean and IQM with 95%",
        f"stratified-bootstrap CIs (rliable, percentile method, {reps} resamples).",
        f"**Published.** zoo: {sources.get('zoo')}. CleanRL: {sources.get('cleanrl')}; different hyperparameters and",
        "budgets, shown for scale only. \"zoo in CI\" says whether the zoo's mean lies inside our CI of the mean.",
        "",
        "| env | algo | budget | seeds | mean [95% CI] | IQM [95% CI] | zoo (1 run) | CleanRL | zoo in CI |",
        "|---|---|---:|---:|---|---|---|---|:-:|",
    ]
    for r in table.itertuples():
        zoo = _published(r.zoo_mean, r.zoo_std, r.zoo_env_id, r.zoo_budget)
        clean = _published(r.cleanrl_mean, r.cleanrl_std, r.cleanrl_env_id, r.cleanrl_budget)
        inside = "-" if _missing(r.zoo_inside_ci) else ("yes" if r.zoo_inside_ci else "**no**")
        if r.interval != "95% CI" and inside != "-":
            inside += f" ({r.seeds} seeds: range, not a CI)"
        lines.append(f"| {r.gym_id} | {r.algo.upper()}{r.variant} | {r.budget:,} | {r.seeds} | {_fmt(r.mean)} [{_fmt(r.mean_low)}, "
                     f"{_fmt(r.mean_high)}] | {_fmt(r.iqm)} [{_fmt(r.iqm_low)}, {_fmt(r.iqm_high)}] | {zoo} | {clean} | {inside} |")
    lines += ["", "## Per seed and diagnosis", ""]
    for r in table.itertuples():
        lines.append(f"- **{r.algo.upper()}{r.variant} {r.gym_id}** (seeds {r.seed_list}; {r.episodes_per_seed}+ eval episodes each; "
                     f"{r.wall_s_total / 60:.0f} min of training in all): {r.per_seed}.")
        if r.diagnosis:
            lines.append(f"  {r.diagnosis}")
    lines += ["", "## Runs", "", "Training wall time is the run's own clock (carried across resumptions), as measured: runs that shared "
              "their cores with other work took longer than they would alone.", "",
              "| run | env steps | eval episodes | score | training wall time |", "|---|---:|---:|---:|---:|"]
    for r in runs.sort_values(["env", "algo", "seed"]).itertuples():
        lines.append(f"| {r.label} | {int(r.total_env_steps):,} | {r.episodes} | {_fmt(r.score)} | {r.wall_s / 60:.1f} min |")
    lines += ["", "Commands that made them (resumable: rerunning one continues it):", "", "```"] + commands + ["```", ""]
    return "\n".join(lines)


def log_to_wandb(table: pd.DataFrame, runs: pd.DataFrame, experiment: str, project: str, mode: str, root: Path,
                 entity: str | None = None) -> list[str]:
    """One W&B run per (env, algo): group <experiment>/<env> (where the training runs of that env
    are), job_type <algo>, a one-row comparison table and the per-seed table. Returns the run dirs."""
    import wandb

    made = []
    for r in table.to_dict("records"):
        seeds = runs[(runs["env"] == r["env"]) & (runs["algo"] == r["algo"]) & (runs["variant"] == r["variant"])]
        seeds = seeds.sort_values("seed")
        run = wandb.init(project=project, entity=entity, mode=mode, dir=str(root), group=f"{experiment}/{r['env']}",
                         job_type=r["algo"], name=f"{r['algo']}{r['variant']}-{r['env']}-vs-zoo", reinit="create_new",
                         config={"env": r["env"], "algo": r["algo"], "variant": r["variant"], "budget": r["budget"], "seeds": r["seeds"]},
                         settings=wandb.Settings(console="off", x_disable_stats=True, silent=True))
        cols = ["gym_id", "algo", "budget", "seeds", "mean", "mean_low", "mean_high", "iqm", "iqm_low", "iqm_high",
                "zoo_mean", "zoo_std", "zoo_budget", "cleanrl_mean", "zoo_inside_ci", "diagnosis"]
        run.log({"baselines_vs_zoo": wandb.Table(columns=cols, data=[[r[c] for c in cols]]),
                 "per_seed": wandb.Table(columns=["seed", "score", "episodes", "env_steps", "wall_s"],
                                         data=[[int(s.seed), float(s.score), int(s.episodes), int(s.total_env_steps),
                                                float(s.wall_s)] for s in seeds.itertuples()])})
        run.summary.update({k: r[k] for k in ("mean", "mean_low", "mean_high", "iqm", "zoo_mean", "zoo_inside_ci")
                            if r[k] is not None})
        made.append(str(Path(run.dir).parent))
        run.finish()
    return made
