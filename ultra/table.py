"""The critical-state table, how a live state finds its entry, and which reward an executed
action earns there.

Matching is nearest neighbour in a normalised space (each key dimension divided by its spread
over the identification trajectories), accepted within `radius` measured as the root-mean-square
of the per-dimension z-distances, so the radius means the same for a 6-d and an 11-d key. The
radius is either given or calibrated (`calibrate`) so that a target share of the
identification episodes' states match.

Each entry carries the LLM's suggested action with the reward it gave that action, and the
action the agent took there with the reward it gave that one. `payment` pays an executed action
the reward of the listed action it equals (Discrete) or lies within `tolerance` of (Box: RMS
distance in units of each dimension's half range), the suggestion first; any other action
earns nothing, so a reward is never paid to an action it was not given for."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from llmrl.errors import ConfigError


@dataclass
class CriticalState:
    key: list[float]
    action: Any = None                 # the LLM's better action (ULTRA-A), checked against the space
    reward_action: float | None = None  # the LLM's reward for its action (ULTRA-RA)
    taken_action: Any = None           # what the agent did there in the identification episode
    reward_taken: float | None = None  # the LLM's reward for the agent's action (ULTRA-R, ULTRA-RA)
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

    def __len__(self) -> int:
        return len(self.entries)

    @staticmethod
    def spread(keys: np.ndarray) -> list[float]:
        """Per-dimension standard deviation; constant dimensions get 1 (any difference there
        is then measured in raw units)."""
        std = np.asarray(keys, dtype=np.float64).std(axis=0)
        return np.where(std > 1e-8, std, 1.0).tolist()

    def _d2(self, keys: np.ndarray) -> np.ndarray:
        """Squared z-distance of every row of `keys` to every entry (rows x entries)."""
        z = np.asarray(keys, dtype=np.float64).reshape(len(keys), 1, -1) / self._scale - self._scaled
        return np.einsum("nmd,nmd->nm", z, z)

    def nearest(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index of the nearest entry for each row of `keys`, and its RMS z-distance."""
        d2 = self._d2(keys)
        best = d2.argmin(axis=1)
        return best, np.sqrt(d2[np.arange(len(best)), best] / self._keys.shape[1])

    def match(self, keys: np.ndarray) -> np.ndarray:
        """Index of the matching entry for each row of `keys`, or -1."""
        if not self.entries:
            return np.full(len(keys), -1)
        best, dist = self.nearest(keys)
        return np.where(dist <= self.radius, best, -1)

    def held_out_distances(self, keys: np.ndarray, row_episode: np.ndarray) -> np.ndarray:
        """Each identification state's distance to the nearest entry of *another* episode
        (inf where every entry comes from the row's own episode)."""
        d2 = self._d2(keys)
        entry_episode = np.array([e.episode for e in self.entries])
        d2[np.asarray(row_episode)[:, None] == entry_episode[None, :]] = np.inf
        return np.sqrt(d2.min(axis=1) / self._keys.shape[1])

    def calibrate(self, keys: np.ndarray, rate: float, row_episode: np.ndarray) -> None:
        """Set the radius so that a share `rate` of the identification episodes' states lies
        within it of an entry from another episode; the share reached is kept in `meta`.
        Held out by episode because consecutive states of one episode nearly coincide: on
        Hopper a radius calibrated on all states to match 2% matched 0.2% of the refinement's
        fresh states, the entries' temporal neighbours having filled the quota."""
        if not self.entries:
            return
        dist = self.held_out_distances(keys, row_episode)
        usable = dist[np.isfinite(dist)]
        if not len(usable):
            raise ConfigError("method.match_rate calibrates the radius on other episodes' states than an entry's own: "
                              "it needs method.num_trajectories >= 2 (or set match_rate=null and a match_radius)")
        self.radius = float(np.quantile(usable, rate, method="inverted_cdf"))
        self.meta.update(radius_source="calibrated", target_match_rate=rate,
                         identification_match_rate=round(float(np.mean(usable <= self.radius)), 6))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"radius": self.radius, "scale": self.scale, "meta": self.meta,
                                    "entries": [asdict(e) for e in self.entries]}, indent=1, default=_plain))

    @classmethod
    def load(cls, path: Path) -> "CriticalTable":
        data = json.loads(Path(path).read_text())
        return cls([CriticalState(**e) for e in data["entries"]], data["scale"], float(data["radius"]), data.get("meta", {}))


def same_action(space: gym.Space, a: Any, b: Any, tolerance: float) -> bool:
    """Discrete: equal. Box: RMS distance, per dimension in units of its half range, <= tolerance."""
    if b is None:
        return False
    if isinstance(space, gym.spaces.Discrete):
        return int(np.asarray(a).item()) == int(np.asarray(b).item())
    half = (space.high - space.low).ravel() / 2.0
    d = (np.asarray(a, dtype=np.float64).ravel() - np.asarray(b, dtype=np.float64).ravel()) / half
    return float(np.sqrt(np.mean(d * d))) <= tolerance


def payment(entry: CriticalState, executed: Any, space: gym.Space, tolerance: float) -> tuple[float, str] | None:
    """(reward, "suggested" | "taken") for an action executed at `entry`'s state, or None."""
    if entry.reward_action is not None and same_action(space, executed, entry.action, tolerance):
        return entry.reward_action, "suggested"
    if entry.reward_taken is not None and same_action(space, executed, entry.taken_action, tolerance):
        return entry.reward_taken, "taken"
    return None


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if hasattr(v, "item"):
        return v.item()
    return str(v)
