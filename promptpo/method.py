"""The PromptPO loop, as published: every round sends one prompt N times concurrently, runs
each reply's policy in the sandbox for a few episodes (the object kept across them), repairs
crashing candidates from their tracebacks, keeps the best, and shows every earlier round's
winner (with returns, successes and Feedback summaries, plus an optional reflection) to the
next round. One curve point per round; every environment step spent counts."""
from __future__ import annotations

import json
import logging
import statistics
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gymnasium as gym
from omegaconf import OmegaConf

from llmrl.checkpoint import Checkpoint
from llmrl.envs.spec import EnvSpec
from llmrl.errors import ConfigError
from llmrl.llm.client import Usage
from llmrl.runner import RunContext
from llmrl.sandbox import Sandbox, SandboxSettings
from llmrl.seeding import derived_seed
from promptpo.extract import first_python_block, missing_block_reason
from promptpo.prompts import fmt_numbers, render, user

log = logging.getLogger(__name__)
ARTIFACTS = "promptpo"


class PromptPO:
    needs_llm = True
    extra_columns = ["round", "candidates_ok", "repairs"]

    def __init__(self, name: str = "promptpo", rounds: int = 10, n_candidates: int = 10, episodes_per_candidate: int = 5,
                 max_repairs: int = 10, feedback: bool = True, feedback_repairs: int = 3, reflection: bool = True,
                 select_by: str = "auto", history_rounds: int | None = None) -> None:
        for key, value, low in (("rounds", rounds, 1), ("n_candidates", n_candidates, 1),
                                ("episodes_per_candidate", episodes_per_candidate, 1), ("max_repairs", max_repairs, 0),
                                ("feedback_repairs", feedback_repairs, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"method.{key}={value!r} must be an integer >= {low}")
        if select_by not in ("auto", "return", "success"):
            raise ConfigError(f"method.select_by={select_by!r}: choose auto, return or success")
        if history_rounds is not None and (not isinstance(history_rounds, int) or history_rounds < 1):
            raise ConfigError(f"method.history_rounds={history_rounds!r} must be a positive integer or null (all)")
        self.name = name
        self.rounds, self.n, self.episodes = rounds, n_candidates, episodes_per_candidate
        self.max_repairs, self.use_feedback, self.feedback_repairs = max_repairs, feedback, feedback_repairs
        self.use_reflection, self.select_by, self.history_rounds = reflection, select_by, history_rounds

    def budget(self, spec: EnvSpec) -> int:
        """An upper bound of env steps (rounds x N x episodes x horizon), for the progress bar."""
        return self.rounds * self.n * self.episodes * spec.horizon

    # ---- set-up -------------------------------------------------------------------------------
    def _context(self, ctx: RunContext) -> dict[str, Any]:
        desc = ctx.spec.describe()
        obs_class = desc.observation_class.__name__
        class_name = obs_class.removesuffix("Observation") + "Policy"
        return {"observation_source": desc.observation_source.strip(), "action_context": desc.action_context.strip(),
                "reward_source": desc.reward_source.strip(), "horizon": ctx.spec.horizon, "episodes": self.episodes,
                "class_name": class_name, "observation_class": obs_class, "has_success": ctx.spec.has_success}

    def _by_success(self, ctx: RunContext) -> bool:
        return self.select_by == "success" or (self.select_by == "auto" and ctx.spec.has_success)

    def train(self, ctx: RunContext, checkpoint: Checkpoint | None) -> dict[str, Any]:
        self.ctx, self.llm = ctx, ctx.llm
        self.prompt_ctx = self._context(ctx)
        self.env_dict = {k: v for k, v in OmegaConf.to_container(ctx.cfg.env, resolve=True).items() if not k.startswith("_")}
        self.art = Path(ctx.run_dir) / ARTIFACTS
        self.art.mkdir(exist_ok=True)
        state = self._restore(checkpoint)
        settings = SandboxSettings.from_config(ctx.cfg.sandbox)
        with Sandbox(settings, Path(ctx.run_dir) / "sandbox") as sandbox:
            self.sandbox = sandbox
            sandbox.warm(self.env_dict)
            if self.use_feedback and state["feedback_source"] is None and not state["feedback_done"]:
                state["feedback_source"] = self._write_feedback()
                state["feedback_done"] = True
            for r in range(state["round"] + 1, self.rounds + 1):
                self._round(r, state)
        best = Path(ctx.run_dir) / "best_policy.py"
        ctx.tracker.log_artifact(f"{ctx.tracker.label}-policy", "policy", [best, self.art],
                                 {"best_round": state["best"]["round"] if state["best"] else None})
        return {"sandbox": sandbox.describe(), "best_round": state["best"]["round"] if state["best"] else None,
                "best_train_return": state["best"]["mean"] if state["best"] else None}

    def _restore(self, checkpoint: Checkpoint | None) -> dict[str, Any]:
        if checkpoint is None:
            return {"round": 0, "history": [], "best": None, "reflection": None, "feedback_source": None,
                    "feedback_done": False}
        state = json.loads((checkpoint.path / "promptpo_state.json").read_text())
        self.llm.usage = Usage(**state.pop("usage"))  # the curve's LLM columns go on from where they were
        return state

    # ---- Feedback class (once per run) ----------------------------------------------------------
    def _random_policy(self, seed: int) -> str:
        """The probe the Feedback class is tried on: uniform actions from a generator of its own,
        seeded from the run, so identical runs spend identical steps on it."""
        space = self.ctx.spec.action_space()
        if isinstance(space, gym.spaces.Discrete):
            body = f"return int(self.rng.integers({space.start}, {space.start + space.n}))"
        else:
            body = f"return self.rng.uniform(np.array({space.low.tolist()}), np.array({space.high.tolist()}))"
        return (f"import numpy as np\n\n\nclass RandomPolicy:\n    def __init__(self):\n"
                f"        self.rng = np.random.default_rng({seed})\n\n    def act(self, obs):\n        {body}\n")

    def _write_feedback(self) -> str | None:
        folder = self.art / "feedback"
        folder.mkdir(exist_ok=True)
        messages = user(render("feedback.md.j2", **self.prompt_ctx))
        probe = self._random_policy(self._rng_seed("feedback-probe"))
        code = None
        for attempt in range(self.feedback_repairs + 1):
            reply = self.llm.complete(messages, sample_index=attempt, tag=f"feedback/{attempt}")
            code = first_python_block(reply.text)
            if code is None:
                error = {"message": f"no code: {missing_block_reason(reply.text)}", "traceback": ""}
                (folder / f"attempt_{attempt}.json").write_text(json.dumps({"error": error}, indent=2))
                messages = user(render("feedback.md.j2", **self.prompt_ctx))
                continue
            (folder / f"attempt_{attempt}.py").write_text(code)
            result = self.sandbox.run(self.sandbox.job(self.env_dict, probe, [self._seed(0, 0)], feedback_source=code,
                                                       rng_seed=self._rng_seed("feedback", attempt)))
            self.ctx.counter.add(int(result.get("steps", 0)))
            (folder / f"attempt_{attempt}.json").write_text(json.dumps(_public(result), indent=2))
            if result.get("feedback") and not result.get("feedback_error"):
                (folder / "Feedback.py").write_text(code)
                return code
            error = result.get("feedback_error") or {"message": "summarize_trajectory returned nothing", "traceback": ""}
            messages = user(render("feedback_repair.md.j2", error=error["message"], traceback=error.get("traceback", ""), code=code))
        log.warning("no working Feedback class after %d repairs; going on without trajectory summaries", self.feedback_repairs)
        return None

    # ---- one round ------------------------------------------------------------------------------
    def _seed(self, round_index: int, episode: int) -> int:
        return self.ctx.seed * 1_000_000 + round_index * 1000 + episode

    def _rng_seed(self, *parts: Any) -> int:
        """The seed of Python's and numpy's generators in one evaluation's sandbox, from the run
        seed and what the evaluation is, so a replayed run draws the same numbers."""
        return derived_seed(self.ctx.seed, *parts)

    def _round(self, r: int, state: dict[str, Any]) -> None:
        folder = self.art / f"round_{r:02d}"
        folder.mkdir(exist_ok=True)
        history = self._history_view(state)
        prompt = render("policy.md.j2", **self.prompt_ctx, history=history, reflection=state["reflection"],
                        starter_code=render("starter.py.j2", **self.prompt_ctx).strip())
        (folder / "prompt.md").write_text(prompt)
        seeds = [self._seed(r, e) for e in range(self.episodes)]
        replies = self.llm.sample(user(prompt), n=self.n, tag=f"round{r}/policy")
        with ThreadPoolExecutor(max_workers=self.n, thread_name_prefix="candidate") as pool:
            candidates = list(pool.map(lambda i: self._candidate(r, i, replies[i].text, seeds, state, folder), range(self.n)))
        ok = [c for c in candidates if c["ok"]]
        repairs = sum(len(c["attempts"]) - 1 for c in candidates)
        winner = max(ok, key=self._score) if ok else None
        if winner is not None:
            entry = {"round": r, "code": winner["code"], "returns": winner["returns"], "successes": winner["successes"],
                     "feedback": winner["feedback"], "mean": statistics.fmean(winner["returns"]),
                     "success_mean": statistics.fmean(winner["successes"]) if winner["successes"] else None}
            state["history"].append(entry)
            if state["best"] is None or self._score(entry) > self._score(state["best"]):
                state["best"] = entry
                (Path(self.ctx.run_dir) / "best_policy.py").write_text(self._standalone(entry))
            if self.use_reflection and r < self.rounds:
                text = render("reflection.md.j2", **self.prompt_ctx, history=self._history_view(state))
                reflection = self.llm.complete(user(text), tag=f"round{r}/reflection")
                state["reflection"] = reflection.text.strip() or None
        timing = {f"candidate_{c['index']:02d}": [a["wall_s"] for a in c["attempts"]] for c in candidates}
        (folder / "summary.json").write_text(json.dumps({"winner": winner["index"] if winner else None,
                                                         "candidates_ok": len(ok), "repairs": repairs,
                                                         "evaluation_wall_s": timing}, indent=2))
        state["round"] = r
        self.ctx.tracker.log_metrics(self.ctx.counter.steps, {
            "promptpo/valid_code_rate": len(ok) / self.n,  # runnable in the end, repairs included
            "promptpo/first_attempt_ok_rate": sum(c["attempts"][0]["ok"] for c in candidates) / self.n,
            "promptpo/repairs": repairs,
            "promptpo/candidate_returns": [statistics.fmean(c["returns"]) for c in ok]})
        self._log_point(state, r, winner, len(ok), repairs)

    def _score(self, c: dict[str, Any]) -> tuple[float, float]:
        mean = statistics.fmean(c["returns"])
        if self._by_success(self.ctx) and c.get("successes"):
            return (statistics.fmean(c["successes"]), mean)
        return (mean, 0.0)

    def _candidate(self, r: int, i: int, reply: str, seeds: list[int], state: dict, folder: Path) -> dict[str, Any]:
        """Extract, run, and repair from the traceback up to max_repairs times."""
        cand_dir = folder / f"candidate_{i:02d}"
        cand_dir.mkdir(exist_ok=True)
        attempts: list[dict[str, Any]] = []
        code = first_python_block(reply)
        for attempt in range(self.max_repairs + 1):
            if code is None:
                error = {"kind": "no_code", "message": f"no code to run: {missing_block_reason(reply)}", "traceback": ""}
                result = {"ok": False, "error": error, "steps": 0}
            else:
                (cand_dir / f"attempt_{attempt:02d}.py").write_text(code)
                job = self.sandbox.job(self.env_dict, code, seeds, class_name=self.prompt_ctx["class_name"],
                                       feedback_source=state["feedback_source"], rng_seed=self._rng_seed(r, i, attempt))
                result = self.sandbox.run(job)
                self.ctx.counter.add(int(result.get("steps", 0)))
            (cand_dir / f"attempt_{attempt:02d}.json").write_text(json.dumps(_public(result), indent=2))
            attempts.append({"attempt": attempt, "ok": result["ok"], "error": result.get("error"),
                             "wall_s": result.get("wall_s")})
            if result["ok"]:
                return {"index": i, "ok": True, "code": code, "returns": result["returns"], "successes": result.get("successes"),
                        "feedback": result.get("feedback"), "attempts": attempts}
            if attempt == self.max_repairs:
                break
            err = result["error"]
            messages = user(render("repair.md.j2", error=err["message"], traceback=err.get("traceback", ""),
                                   output=result.get("output") or "", code=code or reply,
                                   class_name=self.prompt_ctx["class_name"]))
            reply = self.llm.complete(messages, tag=f"round{r}/candidate{i}/repair{attempt + 1}").text
            code = first_python_block(reply)
        return {"index": i, "ok": False, "code": code, "attempts": attempts}

    def _history_view(self, state: dict[str, Any]) -> list[dict[str, Any]]:
        entries = state["history"][-self.history_rounds:] if self.history_rounds else state["history"]
        best_round = state["best"]["round"] if state["best"] else None
        return [{**e, "is_best": e["round"] == best_round, "returns_text": fmt_numbers(e["returns"]),
                 "successes_text": fmt_numbers(e["successes"]) if e.get("successes") else "",
                 "mean_text": f"{e['mean']:.4g}"} for e in entries]

    # ---- curve, evaluation, checkpoint ----------------------------------------------------------
    def _log_point(self, state: dict[str, Any], round_index: int, winner, ok: int, repairs: int) -> None:
        best = state["best"]
        point: dict[str, Any] = {"env_steps": self.ctx.counter.steps, "round": round_index, "candidates_ok": ok,
                                 "repairs": repairs, **self.llm.usage.curve_columns()}
        if winner is not None:
            point["train_return"] = statistics.fmean(winner["returns"])
        if best is not None:
            result = self.sandbox.run(self.sandbox.job(self.env_dict, best["code"], self.ctx.eval_seeds(),
                                                       class_name=self.prompt_ctx["class_name"],
                                                       rng_seed=self._rng_seed("eval", round_index)))
            if result["ok"]:
                returns = result["returns"]
                point.update(return_mean=statistics.fmean(returns), return_std=statistics.pstdev(returns),
                             eval_episodes=len(returns))
                if result.get("successes") is not None:
                    point["success_rate"] = statistics.fmean(result["successes"])
        if self.ctx.tracker.points and point["env_steps"] <= self.ctx.tracker.points[-1]["env_steps"]:
            log.warning("round %d spent no environment step (no candidate produced runnable code): no curve point", round_index)
        else:
            self.ctx.tracker.log_point(**point)
        snapshot = {**state, "usage": asdict(self.llm.usage)}
        self.ctx.checkpoints.save(
            lambda folder: (folder / "promptpo_state.json").write_text(json.dumps(snapshot, default=str)),
            {"env_steps": self.ctx.counter.steps, "round": round_index, "wall_s": self.ctx.tracker.wall_s},
        )

    def _standalone(self, entry: dict[str, Any]) -> str:
        header = (f"# Best PromptPO policy of this run: round {entry['round']}, env {self.ctx.spec.name},\n"
                  f"# training returns {fmt_numbers(entry['returns'])}.\n"
                  f"# Evaluate it: python scripts/evaluate_policy.py THIS_FILE env={self.ctx.spec.name}\n\n")
        return header + entry["code"]


def _public(result: dict[str, Any]) -> dict[str, Any]:
    """What a candidate's JSON keeps: everything its evaluation produced, and nothing that differs
    between two identical evaluations (its wall time goes to the round's summary), so a replayed
    run writes byte-identical files."""
    return {k: v for k, v in result.items() if k not in ("id", "wall_s")}
