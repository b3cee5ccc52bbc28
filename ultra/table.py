"""The critical-state table and how a live state finds its entry. Matching is nearest
neighbour in a normalised space (each key dimension divided by its spread over the
identification trajectories), accepted within `radius` measured as the root-mean-square of
the per-dimension z-distances, so the radius means the same for a 6-d and an 11-d key."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class CriticalState:
    key: list[float]
    action: Any = None          # a better action (ULTRA-A), already checked against the space
    reward: float | None = None  # an implicit reward (ULTRA-R), already checked against the range
    episode: int = -1
    step: int = -1
    reason: str = ""


@dataclass
class CriticalTable:
    entries: list[CriticalState]
    scale: list[float]
    radius: float
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._keys = np.array([e.key for e in self.entries], dtype=np.float64).reshape(len(self.entries), len(self.scale))
        self._scale = np.asarray(self.scale, dtype=np.float64)
        self._scaled = self._keys / self._scale          # entries in normalised units, computed once
        self._limit = self.radius ** 2 * self._keys.shape[1]  # RMS <= radius  <=>  squared sum <= radius^2 * d
        self._rewards = np.array([e.reward if e.reward is not None else 0.0 for e in self.entries], dtype=np.float64)

    def __len__(self) -> int:
        return len(self.entries)

    @staticmethod
    def spread(keys: np.ndarray) -> list[float]:
        """Per-dimension standard deviation; constant dimensions get 1 (any difference there
        is then measured in raw units)."""
        std = np.asarray(keys, dtype=np.float64).std(axis=0)
        return np.where(std > 1e-8, std, 1.0).tolist()

    def match(self, keys: np.ndarray) -> np.ndarray:
        """Index of the matching entry for each row of `keys`, or -1."""
        if not self.entries:
            return np.full(len(keys), -1)
        z = np.asarray(keys, dtype=np.float64).reshape(len(keys), 1, -1) / self._scale - self._scaled
        d2 = np.einsum("nmd,nmd->nm", z, z)
        best = d2.argmin(axis=1)
        return np.where(d2[np.arange(len(best)), best] <= self._limit, best, -1)

    def rewards(self, idx: np.ndarray) -> np.ndarray:
        return self._rewards[idx]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"radius": self.radius, "scale": self.scale, "meta": self.meta,
                                    "entries": [asdict(e) for e in self.entries]}, indent=1, default=_plain))

    @classmethod
    def load(cls, path: Path) -> "CriticalTable":
        data = json.loads(Path(path).read_text())
        return cls([CriticalState(**e) for e in data["entries"]], data["scale"], float(data["radius"]), data.get("meta", {}))


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if hasattr(v, "item"):
        return v.item()
    return str(v)
