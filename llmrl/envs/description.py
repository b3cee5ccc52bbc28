"""What an LLM is told about an environment, kept as plain files a researcher can read and
edit: `observation.py` (a documented class of the observation's fields, built from the raw
vector), `action.md` (type, shape, bounds, meaning) and `reward.py` (a function
`reward(prev_obs, action, next_obs, info) -> float` that reproduces the env's reward; `info` is
the step's info dict and the file says which of its keys it reads).

The same source text is what the LLM reads and what runs, so they cannot drift apart; the
tests check every reward source against the env's own reward."""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

from llmrl.errors import ConfigError

DESCRIPTIONS_DIR = Path(__file__).parent / "descriptions"
INCLUDE_PREFIX = "# include: "


def _exec_source(source: str, filename: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": f"llmrl_description_{Path(filename).parent.name}"}
    exec(compile(source, filename, "exec"), namespace)  # our own files, not LLM output
    return namespace


def _read_with_includes(path: Path) -> str:
    """The file with every `# include: RELATIVE_PATH` line replaced by that file's text, so
    what several envs share is written once, yet the LLM still reads one self-contained text."""
    lines = []
    for line in path.read_text().splitlines(keepends=True):
        if line.startswith(INCLUDE_PREFIX):
            lines.append((path.parent / line[len(INCLUDE_PREFIX):].strip()).read_text())
        else:
            lines.append(line)
    return "".join(lines)


@dataclass(frozen=True)
class Description:
    name: str
    folder: Path

    @cached_property
    def observation_source(self) -> str:
        return _read_with_includes(self.folder / "observation.py")

    @cached_property
    def action_context(self) -> str:
        return _read_with_includes(self.folder / "action.md")

    @cached_property
    def reward_source(self) -> str:
        return _read_with_includes(self.folder / "reward.py")

    @cached_property
    def observation_class(self) -> type:
        ns = _exec_source(self.observation_source, str(self.folder / "observation.py"))
        classes = [
            v for v in ns.values() if inspect.isclass(v) and v.__module__ == ns["__name__"] and v.__name__.endswith("Observation")
        ]
        if len(classes) != 1:
            raise ConfigError(
                f"{self.folder / 'observation.py'} must define exactly one class named *Observation, found {len(classes)}"
            )
        return classes[0]

    @cached_property
    def reward_fn(self) -> Callable[..., float]:
        ns = _exec_source(self.reward_source, str(self.folder / "reward.py"))
        fn = ns.get("reward")
        if not callable(fn):
            raise ConfigError(f"{self.folder / 'reward.py'} must define reward(prev_obs, action, next_obs, info)")
        return fn

    def wrap(self, raw_obs: Any) -> Any:
        """The observation as the documented class: named fields plus `.raw`."""
        return self.observation_class(raw_obs)

    def reward(self, prev_raw: Any, action: Any, next_raw: Any, info: dict) -> float:
        return float(self.reward_fn(self.wrap(prev_raw), action, self.wrap(next_raw), info))


def load_description(name: str) -> Description:
    folder = DESCRIPTIONS_DIR / name
    missing = [f for f in ("observation.py", "action.md", "reward.py") if not (folder / f).is_file()]
    if missing:
        raise ConfigError(f"description '{name}' lacks {', '.join(missing)} in {folder}")
    return Description(name=name, folder=folder)
