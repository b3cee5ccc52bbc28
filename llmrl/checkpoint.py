"""Atomic checkpoints in the run directory: a method writes its files into a fresh folder,
which then replaces the previous checkpoint in two renames. A kill at any moment leaves either
the old or the new checkpoint whole, never a mix."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

STATE_FILE = "state.json"


@dataclass
class Checkpoint:
    path: Path
    state: dict[str, Any]

    @property
    def env_steps(self) -> int:
        return int(self.state["env_steps"])

    @property
    def wall_s(self) -> float:
        return float(self.state.get("wall_s", 0.0))


class CheckpointDir:
    def __init__(self, run_dir: Path) -> None:
        self.current = Path(run_dir) / "checkpoint"
        self._new = Path(run_dir) / "checkpoint.new"
        self._old = Path(run_dir) / "checkpoint.old"

    def save(self, write_files: Callable[[Path], None], state: dict[str, Any]) -> Path:
        """`write_files(folder)` writes the method's files; `state` must hold env_steps."""
        if "env_steps" not in state:
            raise ValueError("checkpoint state needs env_steps")
        shutil.rmtree(self._new, ignore_errors=True)
        self._new.mkdir(parents=True)
        write_files(self._new)
        (self._new / STATE_FILE).write_text(json.dumps(state, indent=2, sort_keys=True))
        shutil.rmtree(self._old, ignore_errors=True)
        if self.current.exists():
            self.current.rename(self._old)
        self._new.rename(self.current)
        shutil.rmtree(self._old, ignore_errors=True)
        return self.current

    def load(self) -> Checkpoint | None:
        """The newest complete checkpoint, or None. A kill between the two renames leaves
        only `checkpoint.old`, which is then the one to use."""
        for folder in (self.current, self._old):
            state_file = folder / STATE_FILE
            if state_file.is_file():
                return Checkpoint(folder, json.loads(state_file.read_text()))
        return None
