"""Are the critical states critical? Randomise the agent's actions at the top-K steps that an
explanation marks, and compare the drop in return with K random steps (the fidelity test of
StateMask and RICE), for ULTRA's LLM-identified steps and for a StateMask network trained on the
same agent. K is a share of each episode (default 1%, 5%, 10%); CIs are bootstrap over episodes.

    python scripts/critical_state_fidelity.py RUN_DIR [--episodes 10] [--fractions 0.01 0.05 0.1]
        [--reps 3] [--sources llm statemask] [--agent pretrained|refined|PATH] [--mask-steps N]
        [--llm NAME] [--set llm.KEY=VALUE ...] [--out results/fidelity/NAME]

RUN_DIR is any refinement run (ULTRA, StateMask-R, RICE, ppo_finetune...): the agent is its
sub-optimal agent (`refine/pretrained`, the default), the refined one (`refined`: its last
checkpoint), or any folder with an SB3 PPO `model.zip` (+ `vecnormalize.pkl`). The episodes are
fresh greedy episodes of that agent, reset seeds 1000 x seed + 900000 onwards (apart from the
run's own). The LLM source asks the run's LLM with the run's ULTRA settings when RUN_DIR is an
ULTRA-LLM run (otherwise ULTRA-RA's defaults), one request per window as ULTRA does, each a draw
of its own (identity: the run's experiment, env and seed, method "fidelity"); `--llm` and `--set`
choose another LLM (e.g. a local server). The StateMask network is trained afresh (the run's
mask settings when RUN_DIR is a StateMask-R/RICE run). Writes fidelity.json, fidelity.md and
the LLM's prompts and replies under --out; `scripts/report.py` picks up results/fidelity/*."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SOURCES = ("llm", "statemask")


def _args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--episodes", type=int, default=10, help="greedy episodes of the agent (CIs are over these)")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.05, 0.1], help="K as shares of each episode")
    p.add_argument("--reps", type=int, default=3, help="perturbed replays per episode and K (random actions differ)")
    p.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES, help="explanations to test (random always)")
    p.add_argument("--agent", default="pretrained", help="pretrained | refined | a folder with model.zip")
    p.add_argument("--mask-steps", type=int, default=None, help="StateMask training steps (default: the run's, else 20000)")
    p.add_argument("--mask-bonus", type=float, default=None, help="StateMask's reward per blinded step (default: the run's, else 1e-4)")
    p.add_argument("--llm", default=None, help="conf/llm/<NAME>.yaml instead of the run's LLM")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides, e.g. llm.api_base=... method.coverage=tiled")
    p.add_argument("--seed", type=int, default=0, help="seed of the random steps, random actions and bootstrap")
    p.add_argument("--out", type=Path, default=None, help="default results/fidelity/<env>_<method>_seed<k>")
    return p.parse_args(argv)


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _config(run_dir: Path, llm_name: str | None, sets: list[str]):
    from omegaconf import OmegaConf

    path = run_dir / "config.yaml"
    if not path.is_file():
        _fail(f"{run_dir} has no config.yaml: give the directory of a run made by run.py")
    cfg = OmegaConf.create(OmegaConf.to_container(OmegaConf.load(path), resolve=False))
    if llm_name is not None:
        conf = Path(__file__).resolve().parents[1] / "conf" / "llm"
        if not (conf / f"{llm_name}.yaml").is_file():
            _fail(f"--llm {llm_name}: no conf/llm/{llm_name}.yaml (choose one of {sorted(p.stem for p in conf.glob('[!_]*.yaml'))})")
        from hydra import compose, initialize_config_dir

        with initialize_config_dir(str(conf.parent), version_base="1.3"):
            cfg.llm = compose("config", overrides=[f"llm={llm_name}"]).llm
    if sets:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(sets))
    return cfg


def _ultra_method(cfg, sets: list[str]):
    """The ULTRA settings that identify: the run's own when it is an ULTRA-LLM run, else ULTRA-RA's."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    node = cfg.method
    if node.get("_target_") != "ultra.method.Ultra" or node.get("critical") != "llm":
        from hydra import compose, initialize_config_dir

        conf = Path(__file__).resolve().parents[1] / "conf"
        with initialize_config_dir(str(conf), version_base="1.3"):
            node = OmegaConf.merge(compose("config", overrides=["method=ultra_ra"]).method,
                                   OmegaConf.from_dotlist(sets).get("method", {}))
    node = OmegaConf.merge(node, {"share_pretrained": None, "pretrained_path": None})
    return instantiate(node, _convert_="all")


def _agent(cfg, run_dir: Path, which: str, spec):
    from stable_baselines3 import PPO

    from llmrl.sb3 import hyperparams
    from llmrl.sb3.venv import deterministic_act, make_venv, observation_view

    if which == "pretrained":
        folder = run_dir / "refine" / "pretrained"
    elif which == "refined":
        folder = run_dir / "checkpoint"
    else:
        folder = Path(which)
    if not (folder / "model.zip").is_file():
        _fail(f"--agent {which}: no model.zip in {folder}")
    hp = hyperparams.resolve("ppo", spec.name, dict(cfg.method.get("hparams") or {}))
    venv = make_venv(spec, None, {**hp, "n_envs": 1}, 0, folder / "vecnormalize.pkl")  # for its normaliser only
    model = PPO.load(str(folder / "model.zip"), device="cpu")
    return deterministic_act(model, venv), observation_view(venv), folder


def main(argv=None) -> int:
    args = _args(argv)
    import numpy as np
    from hydra.utils import instantiate

    from llmrl.analysis import fidelity
    from llmrl.refine.episodes import run_episodes

    run_dir = args.run_dir.resolve()
    cfg = _config(run_dir, args.llm, args.set)
    spec = instantiate(cfg.env, _convert_="all")
    seed = int(cfg.seed)
    act, view, agent_dir = _agent(cfg, run_dir, args.agent, spec)
    out = args.out or Path("results") / "fidelity" / f"{spec.name}_{cfg.method.name}_seed{seed}"
    out.mkdir(parents=True, exist_ok=True)
    seed_base = seed * 1000 + 900_000
    started = time.time()

    def say(text: str) -> None:
        print(f"[fidelity {time.time() - started:6.1f}s] {text}", flush=True)

    rollouts = run_episodes(spec, None, act, args.episodes, seed_base, observe=lambda obs, info: view(obs))
    bases = [fidelity.Base(seed=r.seed, length=r.length, ret=r.ret) for r in rollouts]
    replay = [fidelity.play(spec, act, b.seed, set(), [0]) for b in bases]
    deterministic = bool(np.allclose(replay, [b.ret for b in bases]))
    say(f"{len(bases)} greedy episodes of {agent_dir}: returns {[round(b.ret, 2) for b in bases]}"
        + ("" if deterministic else " (a replay by seed differs: the env or agent is not deterministic; drops are noisier)"))
    rankings: dict[str, list[list[int]]] = {}
    meta: dict = {"run_dir": str(run_dir), "env": spec.name, "run_method": str(cfg.method.name), "seed": seed,
                  "agent": str(agent_dir), "episodes": len(bases), "episode_seeds": [b.seed for b in bases],
                  "returns": [b.ret for b in bases], "lengths": [b.length for b in bases], "reps": args.reps,
                  "fractions": args.fractions, "deterministic_replay": deterministic, "sources": {}}

    if "statemask" in args.sources:
        from rice import mask as statemask

        steps = args.mask_steps or int(cfg.method.get("mask_steps", 20000))
        bonus = args.mask_bonus if args.mask_bonus is not None else float(cfg.method.get("mask_bonus", 1e-4))
        say(f"training a StateMask network for {steps} env steps (bonus {bonus:g})")
        net, stats = statemask.train(spec, None, act, view, steps, bonus, seed=seed * 1000 + 300_000,
                                     hparams=dict(cfg.method.get("mask_hparams") or {}))
        rankings["statemask"] = [[int(t) for t in np.argsort(-statemask.importance(net, np.stack(r.kept)), kind="stable")]
                                 for r in rollouts]
        meta["sources"]["statemask"] = {"mask_steps": steps, "mask_bonus": bonus, "blind_share": stats["blind_share"]}

    if "llm" in args.sources:
        from llmrl.llm import open_llm
        from ultra.identify import identify_llm
        from ultra.trajectories import collect

        method = _ultra_method(cfg, args.set)
        method.budget(spec)
        if cfg.llm.name == "none":
            _fail(f"{run_dir} ran without an LLM: choose one for the llm source with --llm NAME (and --set llm.KEY=VALUE)")
        episodes = collect(spec, None, act, args.episodes, seed_base, method.narrator(spec))
        if [round(e.ret, 6) for e in episodes] != [round(b.ret, 6) for b in bases]:
            say("warning: the narrated episodes' returns differ from the first pass (non-deterministic replay)")
        identity = {"experiment": str(cfg.get("experiment_name", "default")), "env": spec.name, "method": "fidelity",
                    "seed": seed}
        with open_llm(cfg.llm, out, identity) as llm:
            table, stats = identify_llm(llm, spec.name, spec.describe(), episodes, method.ask, method.space, out / "llm",
                                        tag="fidelity")
            usage = llm.usage
        ranked: list[list[int]] = [[] for _ in episodes]
        for entry in table.entries:  # in the order the replies gave them
            if entry.step not in ranked[entry.episode]:
                ranked[entry.episode].append(int(entry.step))
        rankings["llm"] = ranked
        meta["sources"]["llm"] = {"model": str(cfg.llm.get("model")), "prompts": stats.prompts, "repaired": stats.repaired,
                                  "invalid": stats.invalid, "marked_per_episode": [len(r) for r in ranked],
                                  "coverage": method.ask.coverage, "calls": usage.calls,
                                  "tokens": usage.prompt_tokens + usage.completion_tokens, "cost_usd": round(usage.cost_usd, 6)}
        say(f"LLM marked {[len(r) for r in ranked]} steps per episode ({stats.prompts} prompts, {stats.invalid} invalid)")

    rows = fidelity.measure(spec, act, bases, rankings, args.fractions, reps=args.reps, seed=args.seed, progress=say)
    meta["wall_s"] = round(time.time() - started, 1)
    (out / "fidelity.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=float))
    text = (f"# Critical-state fidelity: {spec.name}, agent of {run_dir.name} ({cfg.method.name}, seed {seed})\n\n"
            f"{len(bases)} greedy episodes (returns mean {np.mean([b.ret for b in bases]):.3g}); actions randomised "
            f"at the top-K steps of each source, {args.reps} replays each; drop = unperturbed - perturbed return, "
            f"95% bootstrap CI over episodes.\n\n{fidelity.markdown(rows)}\n")
    (out / "fidelity.md").write_text(text)
    print(text)
    say(f"written {out / 'fidelity.json'} and fidelity.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
