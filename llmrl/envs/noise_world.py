"""NoiseWorld: a stochastic grid world whose cell semantics are hidden from the agent.

Rules (DESIGN §4, our own implementation): an n x n grid, start top-left, goal bottom-right,
four moves. Every floor cell belongs to a region; a region is deterministic, "stochastic-stay"
(a move made from it fails with probability `stay_prob`) or "stochastic-reset" (a move made from
it sends the agent back to the start with probability `reset_prob`). Walls block; traps end the
episode. Reward -1 per step, +n^3 on reaching the goal, -n^5 on a trap; horizon n^2. With
milestones, two cells must be visited in order before the goal pays out and ends the episode.
A board is fully determined by its seed; a start-to-goal path through the milestones always exists.
"""
from __future__ import annotations

from collections import deque

import gymnasium as gym
import numpy as np

# Integer codes of the board as it appears in the observation.
FLOOR, STAY, RESET, WALL, TRAP, GOAL, MILESTONE_1, MILESTONE_2 = range(8)
MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))  # up, right, down, left


class NoiseWorldEnv(gym.Env):
    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        size: int = 10,
        board_seed: int = 0,
        milestones: bool = False,
        n_regions: int = 6,
        wall_fraction: float = 0.12,
        trap_fraction: float = 0.06,
        stay_prob: float = 0.3,
        reset_prob: float = 0.1,
        render_mode: str | None = None,
    ) -> None:
        if size < 3:
            raise ValueError(f"NoiseWorld size must be >= 3, got {size}")
        self.n = size
        self.board_seed = board_seed
        self.stay_prob = stay_prob
        self.reset_prob = reset_prob
        self.render_mode = render_mode
        self.start = (0, 0)
        self.goal = (size - 1, size - 1)
        self.board, self.milestones = _generate_board(
            size, board_seed, milestones, n_regions, wall_fraction, trap_fraction
        )
        self.observation_space = gym.spaces.Box(0.0, float(MILESTONE_2), shape=(4 + size * size,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(4)
        self.pos = self.start
        self.milestones_reached = 0

    # The board never changes within an episode; only the agent moves.
    def _obs(self) -> np.ndarray:
        scale = float(self.n - 1)
        head = np.array([self.pos[0] / scale, self.pos[1] / scale, self.goal[0] / scale, self.goal[1] / scale])
        return np.concatenate([head, self.board.ravel()]).astype(np.float32)

    def _info(self) -> dict:
        return {
            "milestones_reached": self.milestones_reached,
            "milestones_total": len(self.milestones),
            "is_success": self.pos == self.goal and self.milestones_reached == len(self.milestones),
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.pos = self.start
        self.milestones_reached = 0
        return self._obs(), self._info()

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"NoiseWorld action must be an int in 0..3, got {action!r}")
        region = self.board[self.pos]
        rng = self.np_random
        if region == RESET and rng.random() < self.reset_prob:
            target = self.start
        elif region == STAY and rng.random() < self.stay_prob:
            target = self.pos
        else:
            dr, dc = MOVES[int(action)]
            r, c = self.pos[0] + dr, self.pos[1] + dc
            inside = 0 <= r < self.n and 0 <= c < self.n
            target = (r, c) if inside and self.board[r, c] != WALL else self.pos
        self.pos = target
        if self.milestones_reached < len(self.milestones) and target == self.milestones[self.milestones_reached]:
            self.milestones_reached += 1

        cell = self.board[target]
        terminated = False
        reward = -1.0
        if cell == TRAP:
            reward, terminated = -float(self.n**5), True
        elif target == self.goal and self.milestones_reached == len(self.milestones):
            reward, terminated = float(self.n**3), True
        return self._obs(), reward, terminated, False, self._info()

    def render(self):
        glyph = {FLOOR: ".", STAY: "~", RESET: "^", WALL: "#", TRAP: "X", GOAL: "G", MILESTONE_1: "1", MILESTONE_2: "2"}
        rows = []
        for r in range(self.n):
            rows.append("".join("A" if (r, c) == self.pos else glyph[int(self.board[r, c])] for c in range(self.n)))
        return "\n".join(rows)


def _generate_board(n, seed, milestones, n_regions, wall_fraction, trap_fraction):
    """Regions are Voronoi cells of random centres; walls and traps are sprinkled on top, and
    the draw is repeated (same seed stream) until start -> milestones -> goal is reachable."""
    rng = np.random.default_rng(seed)
    for _ in range(1000):
        centres = rng.integers(0, n, size=(n_regions, 2))
        kinds = rng.choice([FLOOR, STAY, RESET], size=n_regions)
        rr, cc = np.mgrid[0:n, 0:n]
        dist = (rr[..., None] - centres[:, 0]) ** 2 + (cc[..., None] - centres[:, 1]) ** 2
        board = kinds[np.argmin(dist, axis=-1)].astype(np.int64)
        reserved = {(0, 0), (n - 1, n - 1)}
        stones: list[tuple[int, int]] = []
        if milestones:
            free = [(r, c) for r in range(n) for c in range(n) if (r, c) not in reserved]
            picks = rng.choice(len(free), size=2, replace=False)
            stones = [free[i] for i in picks]
            reserved |= set(stones)
        u = rng.random((n, n))
        board[u < wall_fraction] = WALL
        board[(u >= wall_fraction) & (u < wall_fraction + trap_fraction)] = TRAP
        for cell in reserved:
            board[cell] = FLOOR
        board[n - 1, n - 1] = GOAL
        for code, cell in zip((MILESTONE_1, MILESTONE_2), stones):
            board[cell] = code
        waypoints = [(0, 0), *stones, (n - 1, n - 1)]
        if all(_reachable(board, a, b) for a, b in zip(waypoints, waypoints[1:])):
            return board, stones
    raise RuntimeError(f"could not draw a solvable NoiseWorld board for seed {seed}")


def _reachable(board, src, dst) -> bool:
    n = board.shape[0]
    seen, queue = {src}, deque([src])
    while queue:
        cell = queue.popleft()
        if cell == dst:
            return True
        for dr, dc in MOVES:
            nxt = (cell[0] + dr, cell[1] + dc)
            if 0 <= nxt[0] < n and 0 <= nxt[1] < n and nxt not in seen and board[nxt] not in (WALL, TRAP):
                seen.add(nxt)
                queue.append(nxt)
    return False
