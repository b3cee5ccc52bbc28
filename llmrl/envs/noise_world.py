"""NoiseWorld, PromptPO's hard-exploration grid world, with the published benchmark's boards and
rules (facts from the authors' public code, `Stephanehk/PromptPO`; this implementation is ours).

An n x n grid, start (0, 0), goal (n-1, n-1), actions 0 up, 1 down, 2 left, 3 right. The floor is
split into max(4, n // 2) Manhattan-Voronoi regions; each region is deterministic, stochastic-stay
(a move out of it succeeds with probability p, else the agent stays) or stochastic-reset (a move
out of it succeeds with probability p / (p + 1 - p'), else the agent is sent back to the start),
with p, p' ~ U(0.25, 0.95) per region. Noise applies only to moves that are not blocked by a wall
or the border. A few walls (max(1, int(0.005 n^2)), never cutting the start from the goal) and
bad terminal cells (max(1, int(0.002 n^2))) are sprinkled on. Boards 4-6 add two milestone cells
that must be visited in order before the goal pays; reaching the goal early ends the episode
without the bonus. Reward -1 per step, -1 + n^3 at the goal, -1 - n^5 at a bad cell; horizon n^2.

The observation is float32: agent row, col, goal row, col (each divided by n - 1), the board's
n^2 cell codes row-major (0 deterministic, 1 stochastic-stay, 2 stochastic-reset, 3 wall, 4 goal,
5 bad terminal, 6 and 7 the milestones), and on milestone boards two progress flags.

A board is a pure function of (n, seed): the layout is drawn from `numpy.random.default_rng(seed)`
in the reference's order of draws, so boards 0-6 are the published ones cell for cell
(`tests/data/noise_world_reference_boards.json` holds them as produced by the reference's own
generator). `reset(seed=s)` reseeds the dynamics' generator, as the reference does."""
from __future__ import annotations

from collections import deque

import gymnasium as gym
import numpy as np

DETERMINISTIC, STAY, RESET, WALL, GOAL, BAD, MILESTONE_1, MILESTONE_2 = range(8)  # board codes
REGION_KINDS = (DETERMINISTIC, STAY, RESET)  # a region's kind, drawn as 1, 2, 3 in this order
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # up, down, left, right


def _reachable(n: int, start, walls: set) -> set:
    seen, queue = {start}, deque([start])
    while queue:
        r, c = queue.popleft()
        for dr, dc in MOVES:
            nxt = (r + dr, c + dc)
            if 0 <= nxt[0] < n and 0 <= nxt[1] < n and nxt not in walls and nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def _path_exists(n: int, start, goal, walls: set) -> bool:
    return goal in _reachable(n, start, walls)


class Layout:
    """One board: regions with their kind and probabilities, walls, bad cells, milestones."""

    def __init__(self, n: int, rng: np.random.Generator, all_codes: bool = False, milestones: bool = False) -> None:
        self.n, self.start, self.goal = n, (0, 0), (n - 1, n - 1)
        cells = [(r, c) for r in range(n) for c in range(n)]
        if n == 1:
            self.region = np.zeros((1, 1), dtype=int)
            self.kind, self.p, self.p_prime = [DETERMINISTIC], [1.0], [1.0]
            self.walls, self.bad = set(), set()
        else:
            centres = [(int(rng.integers(0, n)), int(rng.integers(0, n))) for _ in range(max(4, n // 2))]
            # nearest centre by Manhattan distance, the lowest index on ties
            self.region = np.array([[min(range(len(centres)), key=lambda k: (abs(r - centres[k][0]) + abs(c - centres[k][1]), k))
                                     for c in range(n)] for r in range(n)])
            regions = int(self.region.max()) + 1
            self.kind, self.p, self.p_prime = [], [], []
            for _ in range(regions):
                self.kind.append(REGION_KINDS[int(rng.integers(1, 4)) - 1])
                self.p.append(float(rng.uniform(0.25, 0.95)))
                self.p_prime.append(float(rng.uniform(0.25, 0.95)))
            candidates = [x for x in cells if x not in (self.start, self.goal)]
            rng.shuffle(candidates)
            self.walls: set = set()
            for cell in candidates:  # a few walls, each kept only if the goal stays reachable
                if len(self.walls) >= max(1, int(0.005 * n * n)):
                    break
                self.walls.add(cell)
                if not _path_exists(n, self.start, self.goal, self.walls):
                    self.walls.remove(cell)
            free = [x for x in cells if x not in self.walls and x not in (self.start, self.goal)]
            rng.shuffle(free)
            self.bad = set(free[: max(1, int(0.002 * n * n))])
            if all_codes:
                self._ensure_all_codes(rng, cells)
        self.board = self._codes()
        self.milestones: list[tuple[int, int]] = []
        if milestones:
            reachable = _reachable(n, self.start, self.walls)
            spots = [x for x in cells if x in reachable and x not in (self.start, self.goal) and x not in self.bad
                     and x not in self.walls]
            rng.shuffle(spots)
            self.milestones = spots[:2]
            for code, (r, c) in zip((MILESTONE_1, MILESTONE_2), self.milestones):
                self.board[r, c] = code

    def _codes(self) -> np.ndarray:
        board = np.zeros((self.n, self.n), dtype=int)
        for r in range(self.n):
            for c in range(self.n):
                if (r, c) in self.walls:
                    board[r, c] = WALL
                elif (r, c) == self.goal:
                    board[r, c] = GOAL
                elif (r, c) in self.bad:
                    board[r, c] = BAD
                else:
                    board[r, c] = self.kind[self.region[r, c]]
        return board

    def _ensure_all_codes(self, rng: np.random.Generator, cells: list) -> None:
        """Board 3: make every code 0-5 appear (a wall, a bad cell, each region kind), as the
        reference does: add what is missing, one kind of fix per pass, until nothing is."""
        for _ in range(500):
            missing = {DETERMINISTIC, STAY, RESET, WALL, GOAL, BAD} - set(np.unique(self._codes()).tolist())
            if not missing:
                return
            if WALL in missing:
                options = [x for x in cells if x not in self.walls and x not in (self.start, self.goal)]
                rng.shuffle(options)
                for cell in options:
                    self.walls.add(cell)
                    if _path_exists(self.n, self.start, self.goal, self.walls):
                        break
                    self.walls.remove(cell)
                continue
            if BAD in missing:
                options = [x for x in cells if x not in self.walls and x not in self.bad and x not in (self.start, self.goal)]
                self.bad.add(options[int(rng.integers(len(options)))])
                continue
            used: set = set()
            for code in REGION_KINDS:
                if code not in missing:
                    continue
                ids = [k for k in range(len(self.kind)) if k not in used]
                rng.shuffle(ids)
                for k in ids:
                    if any(self.region[r, c] == k and (r, c) not in self.walls and (r, c) != self.goal and (r, c) not in self.bad
                           for r, c in cells):
                        self.kind[k] = code
                        used.add(k)
                        break
        raise RuntimeError("could not place every NoiseWorld cell code")

    def move_probabilities(self, r: int, c: int) -> tuple[int, float, float]:
        """The kind, p and p' of the cell the agent moves out of (milestones are deterministic)."""
        if self.board[r, c] in (MILESTONE_1, MILESTONE_2):
            return DETERMINISTIC, 1.0, 1.0
        k = self.region[r, c]
        return self.kind[k], self.p[k], self.p_prime[k]


class NoiseWorldEnv(gym.Env):
    metadata = {"render_modes": ["ansi"]}

    def __init__(self, n: int = 10, seed: int = 0, milestones: bool = False, all_codes: bool = False,
                 render_mode: str | None = None) -> None:
        self.n = int(n)
        self._rng = np.random.default_rng(seed)  # the layout's draws, then the dynamics' until a seeded reset
        self.layout = Layout(self.n, self._rng, all_codes=all_codes, milestones=milestones)
        self.render_mode = render_mode
        self.horizon = self.n ** 2
        extra = 2 if milestones else 0
        high = np.ones(4 + self.n * self.n + extra, dtype=np.float32)
        high[4:4 + self.n * self.n] = float(MILESTONE_2)
        self.observation_space = gym.spaces.Box(np.zeros_like(high), high, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(4)
        self._flat = self.layout.board.astype(np.float32).ravel()
        self.pos, self.steps, self.phase = self.layout.start, 0, 0

    def _obs(self) -> np.ndarray:
        scale = float(max(self.n - 1, 1))
        head = np.array([self.pos[0] / scale, self.pos[1] / scale, self.layout.goal[0] / scale,
                         self.layout.goal[1] / scale], dtype=np.float32)
        parts = [head, self._flat]
        if self.layout.milestones:
            parts.append(np.array([float(self.phase >= 1), float(self.phase >= 2)], dtype=np.float32))
        return np.concatenate(parts)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.pos, self.steps, self.phase = self.layout.start, 0, 0
        return self._obs(), {"pos": self.pos, "goal": self.layout.goal, "n": self.n, "horizon": self.horizon}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"NoiseWorld action must be an int in 0..3, got {action!r}")
        lay, n = self.layout, self.n
        self.steps += 1
        r, c = self.pos
        dr, dc = MOVES[int(action)]
        target = (r + dr, c + dc)
        if not (0 <= target[0] < n and 0 <= target[1] < n) or target in lay.walls:
            target = (r, c)  # blocked: no noise
        else:
            kind, p, p_prime = lay.move_probabilities(r, c)
            if kind == STAY and not self._rng.random() < p:
                target = (r, c)
            elif kind == RESET and not self._rng.random() < p / (p + 1.0 - p_prime):
                target = lay.start
        self.pos = target
        code = lay.board[target]
        if code == MILESTONE_1 and self.phase == 0:
            self.phase = 1
        elif code == MILESTONE_2 and self.phase == 1:
            self.phase = 2
        at_goal = target == lay.goal
        paid = at_goal and (not lay.milestones or self.phase >= 2)
        reward = -1.0 + (float(n ** 3) if paid else 0.0) - (float(n ** 5) if target in lay.bad else 0.0)
        terminated = at_goal or target in lay.bad
        truncated = not terminated and self.steps >= self.horizon
        info = {"pos": target, "goal": lay.goal, "steps": self.steps, "is_success": paid}
        return self._obs(), reward, terminated, truncated, info

    def get_state(self) -> dict:
        """The dynamic state (position, step, milestone phase, noise RNG) for llmrl.envs.restore."""
        return {"pos": self.pos, "steps": self.steps, "phase": self.phase, "rng": self._rng.bit_generator.state}

    def set_state(self, state: dict) -> None:
        self.pos, self.steps, self.phase = tuple(state["pos"]), int(state["steps"]), int(state["phase"])
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = state["rng"]

    def render(self):
        glyph = ".~^#GX12"
        return "\n".join("".join("A" if (r, c) == self.pos else glyph[int(self.layout.board[r, c])] for c in range(self.n))
                         for r in range(self.n))
