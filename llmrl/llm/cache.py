"""A persistent response cache keyed by everything that determines a reply: model, messages,
sampling parameters, and the identity of the draw (the run's seed, env, method and experiment,
the request's tag and its sample index). So N samples of one prompt are N entries, seed 1 never
replays seed 0's answers, and a re-run of the same command replays them one for one. One JSON
file per entry, written atomically, so concurrent runs can share a cache directory."""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

MODES = ("off", "readwrite", "replay")


def request_key(model: str, messages: list[dict[str, Any]], params: dict[str, Any], draw: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"model": model, "messages": messages, "params": params, "draw": draw},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class ResponseCache:
    def __init__(self, directory: Path, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"cache mode {mode!r} not in {MODES}")
        self.mode = mode
        self.directory = Path(directory).expanduser()
        if mode != "off":
            self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        if self.mode == "off":
            return None
        path = self._path(key)
        try:
            return json.loads(path.read_text())["response"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return None

    def put(self, key: str, request: dict[str, Any], response: dict[str, Any]) -> None:
        if self.mode != "readwrite":
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({"request": request, "response": response}, ensure_ascii=False))
        os.replace(tmp, path)
