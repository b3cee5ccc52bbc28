"""Every request and response of a run, one JSON object per line in <run_dir>/transcript.jsonl:
the prompts as sent, the reply, timing, tokens, cost, cache hit, attempts and error."""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any


class Transcript:
    def __init__(self, path: Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()

    def append(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        line = json.dumps(record, ensure_ascii=False, default=str)
        with self._lock, open(self.path, "a") as f:
            f.write(line + "\n")
            f.flush()

    def read(self) -> list[dict[str, Any]]:
        if self.path is None or not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
