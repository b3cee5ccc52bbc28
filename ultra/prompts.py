"""Prompt rendering (texts in ultra/prompts/*.j2) and the strict reading of the LLM's JSON."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import jinja2
import numpy as np

TEMPLATES = Path(__file__).parent / "prompts"
_env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                          trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)


def render(name: str, **values: Any) -> str:
    return _env.get_template(name).render(**values).strip() + "\n"


class ReplyError(ValueError):
    """The reply cannot be used; the message says why, for the repair prompt."""


def action_format(space: gym.Space) -> str:
    if isinstance(space, gym.spaces.Discrete):
        return f"an integer from {int(space.start)} to {int(space.start + space.n - 1)}"
    if isinstance(space, gym.spaces.Box):
        low, high = space.low.ravel(), space.high.ravel()
        bounds = ", ".join(f"[{lo:g}, {hi:g}]" for lo, hi in zip(low, high))
        return f"a list of {low.size} numbers, each within its bounds: {bounds}"
    raise ValueError(f"ULTRA supports Discrete and Box action spaces, not {space}")


def _json_text(reply: str) -> str:
    fenced = re.findall(r"```(?:json)?\s*\n(.*?)```", reply, flags=re.DOTALL)
    for block in reversed(fenced):
        if "critical_steps" in block:
            return block
    start = reply.rfind('{"critical_steps"')
    if start < 0:
        start = reply.find("{")
    end = reply.rfind("}")
    if start < 0 or end < start:
        raise ReplyError('no JSON object found; end the reply with a ```json block holding {"critical_steps": [...]}')
    return reply[start:end + 1]


def reward_fields(want_action: bool, want_reward: bool) -> list[str]:
    """The rewards a reply gives per critical step: for the agent's action (ULTRA-R), and also
    for the suggested action when there is one (ULTRA-RA)."""
    if not want_reward:
        return []
    return ["reward_taken", "reward_action"] if want_action else ["reward_taken"]


def parse_reply(reply: str, steps: Sequence[int], space: gym.Space, want_action: bool, want_reward: bool,
                reward_range: tuple[float, float], max_items: int) -> list[dict[str, Any]]:
    """The critical steps of one reply, each checked: `step` is one of `steps` (those the
    prompt showed), `action` lies in `space`, each reward is finite and inside
    `reward_range`. Raises ReplyError naming the first problem."""
    try:
        data = json.loads(_json_text(reply))
    except json.JSONDecodeError as exc:
        raise ReplyError(f"the JSON does not parse: {exc}") from None
    items = data.get("critical_steps") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ReplyError('the JSON object needs a list under "critical_steps"')
    shown = set(steps)
    rewards = reward_fields(want_action, want_reward)
    out, seen = [], set()
    for n, item in enumerate(items[:max_items]):
        where = f"critical_steps[{n}]"
        if not isinstance(item, dict):
            raise ReplyError(f"{where} must be an object with step, reason{', action' if want_action else ''}"
                             f"{''.join(', ' + r for r in rewards)}")
        step = item.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or step not in shown:
            raise ReplyError(f"{where}.step={step!r} must be one of the listed steps ({describe_steps(steps)})")
        if step in seen:
            continue
        seen.add(step)
        entry = {"step": step, "reason": str(item.get("reason", ""))[:500]}
        if want_action:
            entry["action"] = check_action(item.get("action"), space, where)
        lo, hi = reward_range
        for key in rewards:
            r = item.get(key)
            if not isinstance(r, (int, float)) or isinstance(r, bool) or not math.isfinite(r) or not lo <= r <= hi:
                raise ReplyError(f"{where}.{key}={r!r} must be a number from {lo:g} to {hi:g}")
            entry[key] = float(r)
        out.append(entry)
    return out


def describe_steps(steps: Sequence[int]) -> str:
    steps = list(steps)
    if len(steps) > 1 and steps[1] - steps[0] > 1:
        return f"steps {steps[0]} to {steps[-1]}, every {steps[1] - steps[0]} steps"
    return f"steps {steps[0]} to {steps[-1]}"


def check_action(value: Any, space: gym.Space, where: str) -> Any:
    if isinstance(space, gym.spaces.Discrete):
        if not isinstance(value, int) or isinstance(value, bool) or not space.contains(np.int64(value)):
            raise ReplyError(f"{where}.action={value!r} must be {action_format(space)}")
        return int(value)
    arr = np.asarray(value, dtype=np.float64) if isinstance(value, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value) else None
    if arr is None or arr.size != int(np.prod(space.shape)) or not np.all(np.isfinite(arr)):
        raise ReplyError(f"{where}.action={value!r} must be {action_format(space)}")
    low, high = space.low.ravel(), space.high.ravel()
    if np.any(arr < low - 1e-6) or np.any(arr > high + 1e-6):
        raise ReplyError(f"{where}.action={value!r} is out of bounds: must be {action_format(space)}")
    return np.clip(arr, low, high).tolist()
