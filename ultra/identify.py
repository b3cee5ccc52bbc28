"""Identification: narrated episode windows go to the LLM concurrently; each reply is read
strictly; an unusable reply gets one repair prompt, then is counted and skipped. The result is
a critical-state table. `identify_random` is the LLM-free ablation: random steps of the same
windows, random in-space actions and random rewards in the same range.

Which steps the LLM sees (`coverage`): `sampled` sends `windows_per_episode` windows of
`window_steps` consecutive steps per episode (the end always among them); `tiled` sends windows
that together cover every episode, showing every k-th step when the whole narration would
exceed `tokens_per_episode` (estimated at 2.5 characters per token: narrated numbers tokenise densely)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from llmrl.envs.description import Description
from ultra.prompts import ReplyError, action_format, describe_steps, parse_reply, render, reward_fields
from ultra.table import CriticalState, CriticalTable
from ultra.trajectories import Episode, tiles, windows

COVERAGE = ("sampled", "tiled")


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
    match_rate: float | None = None   # calibrate the radius to this share of identification states
    coverage: str = "sampled"
    tokens_per_episode: int = 6000
    example: str | None = None        # the worked case analysis for this env family, or None


@dataclass
class IdentifyStats:
    prompts: int = 0
    repaired: int = 0         # replies that needed the repair prompt and then passed
    invalid: int = 0          # replies still unusable after the repair: skipped
    entries: int = 0
    problems: list[str] = field(default_factory=list)


def _line(ep: Episode, t: int) -> str:
    return f"{t}: {ep.states[t]} | action {ep.action_texts[t]} | reward {ep.rewards[t]:.3g}"


def episode_windows(ep: Episode, ask: Ask) -> tuple[list[range], int]:
    """The windows of `ep` sent to the LLM, and the stride of their steps."""
    if ask.coverage == "tiled":
        return tiles([len(_line(ep, t)) + 1 for t in range(ep.length)], ask.window_steps, ask.tokens_per_episode)
    return windows(ep.length, ask.window_steps, ask.windows_per_episode), 1


def _jobs(episodes: list[Episode], ask: Ask) -> list[tuple[Episode, range, int, int, int]]:
    """(episode, shown steps, part, parts, stride) per prompt."""
    out = []
    for ep in episodes:
        ws, stride = episode_windows(ep, ask)
        out += [(ep, w, k + 1, len(ws), stride) for k, w in enumerate(ws)]
    return out


def _window_prompt(env_name: str, desc: Description, job, ask: Ask, space: gym.Space) -> str:
    ep, steps, part, parts, stride = job
    ending = "terminated (failure or the game ended)" if ep.terminated else "was cut off at the time limit"
    return render("identify.md.j2", env_name=env_name, observation_source=desc.observation_source.strip(),
                  reward_source=desc.reward_source.strip(), action_context=desc.action_context.strip(),
                  example=ask.example, episode=ep.index, length=ep.length, episode_return=ep.ret, ending=ending,
                  part=part, parts=parts, stride=stride, shown=describe_steps(steps), lines=[_line(ep, t) for t in steps],
                  max_items=ask.max_items, want_action=ask.want_action, want_reward=ask.want_reward,
                  reward_fields=reward_fields(ask.want_action, ask.want_reward), action_format=action_format(space),
                  reward_lo=ask.reward_range[0], reward_hi=ask.reward_range[1])


def _repair_prompt(error: str, steps: range, ask: Ask, space: gym.Space) -> str:
    return render("repair.md.j2", error=error, shown=describe_steps(steps), want_action=ask.want_action,
                  reward_fields=reward_fields(ask.want_action, ask.want_reward), action_format=action_format(space),
                  reward_lo=ask.reward_range[0], reward_hi=ask.reward_range[1])


def _plain_action(a: Any, space: gym.Space) -> Any:
    return int(np.asarray(a).item()) if isinstance(space, gym.spaces.Discrete) else np.asarray(a, dtype=np.float64).ravel().tolist()


def _entries(ep: Episode, items: list[dict[str, Any]], space: gym.Space) -> list[CriticalState]:
    return [CriticalState(key=ep.keys[i["step"]].tolist(), action=i.get("action"), reward_action=i.get("reward_action"),
                          taken_action=_plain_action(ep.actions[i["step"]], space), reward_taken=i.get("reward_taken"),
                          episode=ep.index, step=i["step"], reason=i.get("reason", "")) for i in items]


def identify_llm(llm, env_name: str, desc: Description, episodes: list[Episode], ask: Ask, space: gym.Space,
                 out_dir: Path, tag: str, status=None, phase: str = "identification") -> tuple[CriticalTable, IdentifyStats]:
    """`status`: the run's status line (llmrl.status.StatusLine), told the phase and its prompt count."""
    jobs = _jobs(episodes, ask)
    prompts = [_window_prompt(env_name, desc, job, ask, space) for job in jobs]
    if status is not None:
        status.phase(f"{phase}: {len(episodes)} episodes", expect_replies=len(prompts))
    stats = IdentifyStats(prompts=len(prompts))
    out_dir.mkdir(parents=True, exist_ok=True)
    conversations = [[{"role": "user", "content": p}] for p in prompts]
    replies = llm.complete_many(conversations, tag=f"{tag}/identify")

    def read(i: int, text: str, problem: str | None) -> list[dict[str, Any]]:
        if problem:
            raise ReplyError(f"the reply was unusable ({problem})")
        return parse_reply(text, jobs[i][1], space, ask.want_action, ask.want_reward, ask.reward_range, ask.max_items)

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
                                        {"role": "user", "content": _repair_prompt(errors[i], jobs[i][1], ask, space)}]
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
            stats.problems.append(f"window {i} (episode {jobs[i][0].index}, {describe_steps(jobs[i][1])}): "
                                  f"{errors[i]}; after repair: {exc}")

    entries: list[CriticalState] = []
    for i, (ep, steps, *_rest) in enumerate(jobs):
        entries += _entries(ep, parsed.get(i, []), space)
        record = {"episode": ep.index, "steps": [steps.start, steps[-1], steps.step], "reply": replies[i].text,
                  "error": errors.get(i), "repair_reply": second[i].text if i in second else None,
                  "critical_steps": parsed.get(i)}
        (out_dir / f"window_{i:03d}.md").write_text(prompts[i])
        (out_dir / f"window_{i:03d}.json").write_text(json.dumps(record, indent=1))
    table = _table(entries, episodes, ask, {"source": "llm", "windows": len(jobs), "coverage": ask.coverage})
    stats.entries = len(table)
    return table, stats


def identify_random(episodes: list[Episode], ask: Ask, space: gym.Space, rng: np.random.Generator) -> tuple[CriticalTable, IdentifyStats]:
    """The same windows and the same number of critical steps per window as asked of the LLM,
    chosen uniformly; actions sampled from the space, rewards uniform in the range."""
    space = _seeded(space, rng)
    entries: list[CriticalState] = []
    jobs = _jobs(episodes, ask)
    for ep, steps, *_rest in jobs:
        chosen = rng.choice(np.asarray(steps), size=min(ask.max_items, len(steps)), replace=False)
        for t in sorted(int(x) for x in chosen):
            draw = {r: float(rng.uniform(*ask.reward_range)) for r in reward_fields(ask.want_action, ask.want_reward)}
            entries.append(CriticalState(
                key=ep.keys[t].tolist(), action=_plain_action(space.sample(), space) if ask.want_action else None,
                reward_action=draw.get("reward_action"), taken_action=_plain_action(ep.actions[t], space),
                reward_taken=draw.get("reward_taken"), episode=ep.index, step=t, reason="random"))
    table = _table(entries, episodes, ask, {"source": "random", "windows": len(jobs), "coverage": ask.coverage})
    return table, IdentifyStats(prompts=0, entries=len(table))


def _seeded(space: gym.Space, rng: np.random.Generator) -> gym.Space:
    import copy

    space = copy.deepcopy(space)
    space.seed(int(rng.integers(2**31)))
    return space


def _table(entries: list[CriticalState], episodes: list[Episode], ask: Ask, meta: dict[str, Any]) -> CriticalTable:
    keys = np.stack([k for ep in episodes for k in ep.keys])
    table = CriticalTable(entries, CriticalTable.spread(keys), ask.radius, {**meta, "radius_source": "config"})
    if ask.match_rate is not None:
        table.calibrate(keys, ask.match_rate, np.concatenate([[ep.index] * ep.length for ep in episodes]))
    return table
