"""ULTRA-A / ULTRA-R / ULTRA-RA and their own baselines, on the refinement harness
(`llmrl.refine.harness`: pre-training, schedules, shared agents, budgets, checkpoints). What
ULTRA does during refinement:

- identification (`critical: llm`): collect `num_trajectories` episodes of the current agent,
  narrate them, ask the LLM for critical steps (+ a better action, + rewards for the action
  taken and the one suggested), build the table; repeated every `reidentify_every` PPO updates
  on fresh episodes; the identification rollouts are env steps of the refinement budget;
- `critical: random`: the same rollouts, windows and table size, random steps/actions/rewards;
- `critical: none`: plain PPO fine-tuning (`ppo_finetune`), or with `refine: false` the
  sub-optimal agent itself (`ultra_none`);
- PPO trains on the experience the table modulates (`ultra.guide`); optionally episodes start
  from the identified critical states with probability `reset_to_critical`."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import get_class
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnvWrapper

from llmrl.envs.spec import EnvSpec
from llmrl.errors import ConfigError
from llmrl.refine.harness import CountRollouts, Refinement, positive_int, probability
from llmrl.refine import starts
from llmrl.refine.starts import starts_of
from ultra.guide import GUIDED_POLICIES, CriticalStateGuide
from ultra.identify import COVERAGE, Ask, IdentifyStats, identify_llm, identify_random
from ultra.prompts import render
from ultra.table import CriticalTable
from ultra.trajectories import collect

log = logging.getLogger(__name__)
CRITICAL = ("llm", "random", "none")
GUIDE_COUNTS = ("acted_states", "matched_states", "overrides", "shaped_steps")
COUNTERS = ("identifications", "identification_steps", "prompts", "repaired", "invalid_replies", *GUIDE_COUNTS, "critical_starts")


class Ultra(Refinement):
    columns = ("critical_states", "match_radius", "match_rate")
    counters = COUNTERS

    def __init__(
        self,
        name: str,
        critical: str = "llm",
        use_actions: bool = True,
        use_rewards: bool = True,
        num_trajectories: int = 5,
        collect_deterministic: bool = False,
        coverage: str = "sampled",
        window_steps: int = 40,
        windows_per_episode: int = 3,
        tokens_per_episode: int = 6000,
        max_critical_per_window: int = 3,
        case_example: bool = True,
        case_examples: dict[str, str] | None = None,
        match_radius: float = 0.2,
        match_rate: float | None = None,
        reward_weight: float = 1.0,
        action_tolerance: float = 0.1,
        reward_range: list[float] | tuple[float, float] = (-1.0, 1.0),
        reidentify_every: int = 0,
        reset_to_critical: float = 0.0,
        narrators: dict[str, str] | None = None,
        **harness: Any,
    ) -> None:
        super().__init__(name, **harness)
        if critical not in CRITICAL:
            raise ConfigError(f"method.critical={critical!r}: choose one of {list(CRITICAL)}")
        self.critical = critical
        self.use_actions = bool(use_actions) and critical != "none"
        self.use_rewards = bool(use_rewards) and critical != "none"
        if critical != "none" and not (self.use_actions or self.use_rewards):
            raise ConfigError(f"method={name}: critical={critical} needs use_actions or use_rewards (or critical=none)")
        self.num_trajectories = positive_int("num_trajectories", num_trajectories)
        self.collect_deterministic = bool(collect_deterministic)
        lo, hi = (float(x) for x in reward_range)
        if not lo < hi:
            raise ConfigError(f"method.reward_range={list(reward_range)} must be [low, high] with low < high")
        if not (isinstance(match_radius, (int, float)) and match_radius >= 0):
            raise ConfigError(f"method.match_radius={match_radius!r} must be a number >= 0")
        if match_rate is not None and not (isinstance(match_rate, (int, float)) and 0 < match_rate <= 1):
            raise ConfigError(f"method.match_rate={match_rate!r} must be null (use match_radius) or a share in (0, 1]")
        if coverage not in COVERAGE:
            raise ConfigError(f"method.coverage={coverage!r}: choose one of {list(COVERAGE)}")
        if not (isinstance(action_tolerance, (int, float)) and action_tolerance >= 0):
            raise ConfigError(f"method.action_tolerance={action_tolerance!r} must be a number >= 0")
        self.ask = Ask(want_action=self.use_actions, want_reward=self.use_rewards, reward_range=(lo, hi),
                       max_items=positive_int("max_critical_per_window", max_critical_per_window),
                       window_steps=positive_int("window_steps", window_steps),
                       windows_per_episode=positive_int("windows_per_episode", windows_per_episode),
                       radius=float(match_radius), match_rate=None if match_rate is None else float(match_rate),
                       coverage=coverage, tokens_per_episode=positive_int("tokens_per_episode", tokens_per_episode))
        self.case_example = bool(case_example)
        self.case_examples = dict(case_examples or {})
        self.reward_weight = float(reward_weight)
        self.action_tolerance = float(action_tolerance)
        self.reidentify_every = positive_int("reidentify_every", reidentify_every, allow_zero=True)
        self.reset_to_critical = probability("reset_to_critical", reset_to_critical)
        self.narrators = dict(narrators or {})
        self.needs_llm = critical == "llm" and self.refine
        self.guide: CriticalStateGuide | None = None
        self.problems: list[str] = []

    # ---- hooks ---------------------------------------------------------------------------
    def check_env(self, spec: EnvSpec) -> None:
        if self.critical == "llm" and spec.description is None:
            raise ConfigError(f"method={self.name} narrates states from env.description, which env {spec.name} lacks")
        if self.critical == "llm" and self.case_example:
            self.ask.example = self._example(spec.name)
        if self.reset_to_critical > 0 and self.critical != "none":
            starts.check_restorable(spec, self.reset_to_critical)

    def _example(self, env_name: str) -> str | None:
        """The worked case analysis of the env's family: the longest `case_examples` prefix of its name."""
        hits = [p for p in self.case_examples if env_name.startswith(p)]
        if not hits:
            return None
        family = self.case_examples[max(hits, key=len)]
        return render(f"examples/{family}.md.j2", want_action=self.ask.want_action, want_reward=self.ask.want_reward).strip()

    def refine_policy(self, policy: str) -> Any:
        if self.critical == "none":
            return policy
        if policy not in GUIDED_POLICIES:
            raise ConfigError(f"method={self.name}: the PPO policy {policy!r} has no guided variant; use one of {sorted(GUIDED_POLICIES)}")
        return GUIDED_POLICIES[policy]

    def vec_wrapper(self, ctx):
        if self.critical == "none":
            return None
        narrator = self.narrator(ctx.spec)

        def wrap(v):
            self.guide = CriticalStateGuide(v, narrator.key, self.reward_weight, self.use_actions, self.use_rewards,
                                            self.space, self.action_tolerance)
            return self.guide

        return wrap

    def env_wrapper(self, ctx):
        if self.reset_to_critical <= 0 or self.critical == "none":
            return None
        return starts.wrapper(self.reset_to_critical, ctx.seed)

    def begin_refinement(self, ctx, model, venv, files: Path, state: dict[str, Any]) -> None:
        self.ctx, self.model, self.venv = ctx, model, venv
        self.updates = int(state.get("updates", 0))
        self.dir = ctx.run_dir / "refine"
        if self.guide is None:
            return
        model.policy.guide = self.guide
        for k in GUIDE_COUNTS:
            setattr(self.guide, k, self.counts[k])
        self._mark = (self.guide.acted_states, self.guide.matched_states)
        if (files / "table.json").exists():
            self.guide.set_table(CriticalTable.load(files / "table.json"))
            dummy = _dummy(venv)
            if state.get("refine_timesteps", 0) and dummy.buf_obs is not None:  # exact resume: the live states again
                self.guide.rematch(dummy._obs_from_buf(), dummy.buf_dones, dummy.buf_infos, dummy.reset_infos)
        else:
            self._identify()

    def callbacks(self, ctx, model, venv, stop_at: int):
        if self.guide is None:
            return []

        def after_rollout(rollouts: int) -> None:
            self.updates = rollouts
            acted, matched = self.guide.acted_states - self._mark[0], self.guide.matched_states - self._mark[1]
            self._mark = (self.guide.acted_states, self.guide.matched_states)
            if acted:
                model.logger.record("ultra/match_rate", matched / acted)  # per PPO update, with SB3's own signals
            k = self.reidentify_every
            if k and rollouts % k == 0 and ctx.counter.steps < stop_at:
                self._identify()

        return [CountRollouts(after_rollout, self.updates)]

    def _sync(self) -> None:
        if self.guide is not None:
            for k in GUIDE_COUNTS:
                self.counts[k] = int(getattr(self.guide, k))
            self.counts["critical_starts"] = sum(s.pool_starts for s in starts_of(self.venv)) if self.reset_to_critical else 0

    def point(self) -> dict[str, Any]:
        self._sync()
        table = self.guide.table if self.guide is not None else None
        return {"critical_states": len(table) if table else 0, "match_radius": table.radius if table else None,
                "match_rate": self._match_rate()}

    def _match_rate(self) -> float | None:
        """Share of the live refinement states that matched a critical state, so far."""
        acted = self.counts["acted_states"]
        return round(self.counts["matched_states"] / acted, 6) if acted else None

    def state(self) -> dict[str, Any]:
        self._sync()
        return {"updates": self.updates}

    def write_files(self, folder: Path) -> None:
        if self.guide is not None and self.guide.table is not None:
            self.guide.table.save(folder / "table.json")

    def summary(self) -> dict[str, Any]:
        self._sync()
        table = self.guide.table if self.guide is not None else None
        return {"ultra": {**self.counts, "match_rate": self._match_rate(),
                          "match_radius": table.radius if table else None,
                          "match_radius_source": (table.meta.get("radius_source") if table else None),
                          "coverage": self.ask.coverage, "case_example": self.ask.example is not None},
                "identification_problems": self.problems[-20:]}

    # ---- identification ------------------------------------------------------------------
    def narrator(self, spec: EnvSpec):
        """Built once per run: the live-state keys and the prompts' sentences come from one object."""
        if getattr(self, "_narrator_obj", None) is None:
            target = self.narrators.get(spec.name) or self.narrators.get("default", "ultra.narration.FieldNarrator")
            desc = spec.describe() if spec.description else None
            self._narrator_obj = get_class(target)(desc, self.space)
        return self._narrator_obj

    def _identify(self) -> None:
        """Fresh episodes of the current agent -> a new critical-state table for the guide."""
        ctx, model, venv = self.ctx, self.model, self.venv
        n = self.counts["identifications"] + 1
        normalize = getattr(venv, "normalize_obs", None)

        def act(obs):
            x = normalize(obs) if normalize is not None else obs
            return model.predict(x, deterministic=self.collect_deterministic)[0]

        narrator = self.narrator(ctx.spec)
        episodes = collect(ctx.spec, ctx.counter, act, self.num_trajectories,
                           ctx.seed * 1000 + 100_000 + n * self.num_trajectories, narrator,
                           snapshots=self.reset_to_critical > 0)
        out = self.dir / f"identify_{n:02d}"
        if self.critical == "llm":
            table, stats = identify_llm(ctx.llm, ctx.spec.name, ctx.spec.describe(), episodes, self.ask, self.space, out,
                                        tag=f"identify{n}", status=ctx.tracker.status, phase=f"identification {n}")
        else:
            table, stats = identify_random(episodes, self.ask, self.space, np.random.default_rng([ctx.seed, n]))
            out.mkdir(parents=True, exist_ok=True)
        table.save(out / "table.json")
        self.guide.set_table(table)
        ctx.tracker.status.phase(f"PPO refinement with {len(table)} critical states (identification {n})")
        if self.reset_to_critical > 0:
            pool = [episodes[e.episode].snapshots[e.step] for e in table.entries]
            for layer in starts_of(venv):
                layer.set_pool(pool)
        self._add(stats)
        self.counts["identifications"] = n
        self.counts["identification_steps"] += sum(e.length for e in episodes)
        log.info("identification %d: %d episodes (returns %s), %d critical states, radius %.3g (%s), %d prompts, "
                 "%d repaired, %d invalid", n, len(episodes), [round(e.ret, 1) for e in episodes], len(table), table.radius,
                 table.meta.get("radius_source"), stats.prompts, stats.repaired, stats.invalid)

    def _add(self, stats: IdentifyStats) -> None:
        self.counts["prompts"] += stats.prompts
        self.counts["repaired"] += stats.repaired
        self.counts["invalid_replies"] += stats.invalid
        self.problems += stats.problems


def _dummy(venv) -> DummyVecEnv:
    while isinstance(venv, VecEnvWrapper):
        venv = venv.venv
    return venv
