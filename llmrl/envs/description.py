"""What an LLM is told about an environment, kept as plain files a researcher can read and
edit: `observation.py` (a documented class of the observation's fields, built from the raw
vector), `action.md` (type, shape, bounds, meaning) and either `reward.py` (a function
`reward(prev_obs, action, next_obs, info) -> float` that reproduces the env's reward; `info` is
the step's info dict and the file says which of its keys it reads) or `reward.md` (the reward in
words only, where the published benchmark tells the LLM no more; returns are then the env's).

The same source text is what the LLM reads and what runs, so they cannot drift apart; the
tests check every reward source against the env's own reward. `${name}` in any of the files is
replaced by the env config's `description_vars[name]` (e.g. a board's size)."""
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


def _read_with_includes(path: Path, variables: tuple[tuple[str, Any], ...] = ()) -> str:
    """The file with every `# include: RELATIVE_PATH` line replaced by that file's text, so
    what several envs share is written once, yet the LLM still reads one self-contained text."""
    lines = []
    for line in path.read_text().splitlines(keepends=True):
        if line.startswith(INCLUDE_PREFIX):
            lines.append((path.parent / line[len(INCLUDE_PREFIX):].strip()).read_text())
        else:
            lines.append(line)
    text = "".join(lines)
    for key, value in variables:
        text = text.replace("${" + key + "}", str(value))
    return text


@dataclass(frozen=True)
class Description:
    name: str
    folder: Path
    variables: tuple[tuple[str, Any], ...] = ()

    @cached_property
    def observation_source(self) -> str:
        return _read_with_includes(self.folder / "observation.py", self.variables)

    @cached_property
    def action_context(self) -> str:
        return _read_with_includes(self.folder / "action.md", self.variables)

    @property
    def reward_is_code(self) -> bool:
        """False where the reward is given in words (reward.md): returns then come from the env."""
        return (self.folder / "reward.py").is_file()

    @cached_property
    def reward_source(self) -> str:
        name = "reward.py" if self.reward_is_code else "reward.md"
        return _read_with_includes(self.folder / name, self.variables)

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
    def reward_fn(self) -> Callable[..., float] | None:
        if not self.reward_is_code:
            return None
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


def load_description(name: str, variables: dict[str, Any] | None = None) -> Description:
    folder = DESCRIPTIONS_DIR / name
    missing = [f for f in ("observation.py", "action.md") if not (folder / f).is_file()]
    if not (folder / "reward.py").is_file() and not (folder / "reward.md").is_file():
        missing.append("reward.py or reward.md")
    if missing:
        raise ConfigError(f"description '{name}' lacks {', '.join(missing)} in {folder}")
    return Description(name=name, folder=folder, variables=tuple(sorted((variables or {}).items())))
