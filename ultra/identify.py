"""Identification: narrated episode windows go to the LLM concurrently; each reply is read
strictly; an unusable reply gets one repair prompt, then is counted and skipped. The result is
a critical-state table. `identify_random` is the LLM-free ablation: random steps of the same
windows, random in-space actions and random rewards in the same range."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from llmrl.envs.description import Description
from ultra.prompts import ReplyError, action_format, parse_reply, render
from ultra.table import CriticalState, CriticalTable
from ultra.trajectories import Episode, windows


@dataclass
class Ask:
    """What identification asks for, and its limits (from the method config)."""

    want_action: bool
    want_reward: bool
    reward_range: tuple[float, float]
    max_items: int            # critical steps per window
    window_steps: int
    windows_per_episode: int
    radius: float


@dataclass
class IdentifyStats:
    prompts: int = 0
    repaired: int = 0         # replies that needed the repair prompt and then passed
    invalid: int = 0          # replies still unusable after the repair: skipped
    entries: int = 0
    problems: list[str] = field(default_factory=list)


def _window_prompt(env_name: str, desc: Description, ep: Episode, start: int, end: int, ask: Ask, space: gym.Space) -> str:
    lines = [f"{t}: {ep.states[t]} | action {ep.action_texts[t]} | reward {ep.rewards[t]:.3g}" for t in range(start, end)]
    ending = "terminated (failure or the game ended)" if ep.terminated else "was cut off at the time limit"
    return render("identify.md.j2", env_name=env_name, observation_source=desc.observation_source.strip(),
                  reward_source=desc.reward_source.strip(), action_context=desc.action_context.strip(),
                  episode=ep.index, length=ep.length, episode_return=ep.ret, ending=ending, first=start, last=end - 1,
                  lines=lines, max_items=ask.max_items, want_action=ask.want_action, want_reward=ask.want_reward,
                  action_format=action_format(space), reward_lo=ask.reward_range[0], reward_hi=ask.reward_range[1])


def _repair_prompt(error: str, start: int, end: int, ask: Ask, space: gym.Space) -> str:
    return render("repair.md.j2", error=error, first=start, last=end - 1, want_action=ask.want_action,
                  want_reward=ask.want_reward, action_format=action_format(space),
                  reward_lo=ask.reward_range[0], reward_hi=ask.reward_range[1])


def _entries(ep: Episode, items: list[dict[str, Any]]) -> list[CriticalState]:
    return [CriticalState(key=ep.keys[i["step"]].tolist(), action=i.get("action"), reward=i.get("reward"),
                          episode=ep.index, step=i["step"], reason=i.get("reason", "")) for i in items]


def identify_llm(llm, env_name: str, desc: Description, episodes: list[Episode], ask: Ask, space: gym.Space,
                 out_dir: Path, tag: str) -> tuple[CriticalTable, IdentifyStats]:
    jobs = [(ep, s, e) for ep in episodes for s, e in windows(ep.length, ask.window_steps, ask.windows_per_episode)]
    prompts = [_window_prompt(env_name, desc, ep, s, e, ask, space) for ep, s, e in jobs]
    stats = IdentifyStats(prompts=len(prompts))
    out_dir.mkdir(parents=True, exist_ok=True)
    conversations = [[{"role": "user", "content": p}] for p in prompts]
    replies = llm.complete_many(conversations, tag=f"{tag}/identify")

    def read(i: int, text: str, problem: str | None) -> list[dict[str, Any]]:
        if problem:
            raise ReplyError(f"the reply was unusable ({problem})")
        ep, s, e = jobs[i]
        return parse_reply(text, range(s, e), space, ask.want_action, ask.want_reward, ask.reward_range, ask.max_items)

    parsed: dict[int, list[dict[str, Any]]] = {}
    errors: dict[int, str] = {}
    for i, c in enumerate(replies):
        try:
            parsed[i] = read(i, c.text, c.problem)
        except ReplyError as exc:
            errors[i] = str(exc)
    # One repair prompt per unusable reply, all at once; a second failure is counted and skipped.
    repair_ids = sorted(errors)
    repair_convs = [conversations[i] + [{"role": "assistant", "content": replies[i].text or ""},
                                        {"role": "user", "content": _repair_prompt(errors[i], jobs[i][1], jobs[i][2], ask, space)}]
                    for i in repair_ids]
    repaired = llm.complete_many(repair_convs, tag=f"{tag}/repair", indices=repair_ids) if repair_convs else []
    second: dict[int, Any] = {}
    for i, c in zip(repair_ids, repaired):
        second[i] = c
        try:
            parsed[i] = read(i, c.text, c.problem)
            stats.repaired += 1
        except ReplyError as exc:
            stats.invalid += 1
            stats.problems.append(f"window {i} (episode {jobs[i][0].index}, steps {jobs[i][1]}-{jobs[i][2] - 1}): {errors[i]}; after repair: {exc}")

    entries: list[CriticalState] = []
    for i, (ep, s, e) in enumerate(jobs):
        entries += _entries(ep, parsed.get(i, []))
        record = {"episode": ep.index, "steps": [s, e - 1], "reply": replies[i].text, "error": errors.get(i),
                  "repair_reply": second[i].text if i in second else None, "critical_steps": parsed.get(i)}
        (out_dir / f"window_{i:03d}.md").write_text(prompts[i])
        (out_dir / f"window_{i:03d}.json").write_text(json.dumps(record, indent=1))
    table = _table(entries, episodes, ask.radius, {"source": "llm", "windows": len(jobs)})
    stats.entries = len(table)
    return table, stats


def identify_random(episodes: list[Episode], ask: Ask, space: gym.Space, rng: np.random.Generator) -> tuple[CriticalTable, IdentifyStats]:
    """The same windows and the same number of critical steps per window as asked of the LLM,
    chosen uniformly; actions sampled from the space, rewards uniform in the range."""
    space = _seeded(space, rng)
    entries: list[CriticalState] = []
    n_windows = 0
    for ep in episodes:
        for s, e in windows(ep.length, ask.window_steps, ask.windows_per_episode):
            n_windows += 1
            steps = rng.choice(np.arange(s, e), size=min(ask.max_items, e - s), replace=False)
            for t in sorted(int(x) for x in steps):
                action = space.sample() if ask.want_action else None
                entries.append(CriticalState(
                    key=ep.keys[t].tolist(),
                    action=(int(action) if isinstance(space, gym.spaces.Discrete) else np.asarray(action).tolist()) if ask.want_action else None,
                    reward=float(rng.uniform(*ask.reward_range)) if ask.want_reward else None,
                    episode=ep.index, step=t, reason="random"))
    table = _table(entries, episodes, ask.radius, {"source": "random", "windows": n_windows})
    return table, IdentifyStats(prompts=0, entries=len(table))


def _seeded(space: gym.Space, rng: np.random.Generator) -> gym.Space:
    import copy

    space = copy.deepcopy(space)
    space.seed(int(rng.integers(2**31)))
    return space


def _table(entries: list[CriticalState], episodes: list[Episode], radius: float, meta: dict[str, Any]) -> CriticalTable:
    keys = np.stack([k for ep in episodes for k in ep.keys])
    return CriticalTable(entries, CriticalTable.spread(keys), radius, meta)
