import numpy as np


class NoiseWorldObservation:
    """One observation of NoiseWorld: an n x n grid (n = 5 or 10). The agent starts in the
    top-left cell (row 0, col 0); the goal is the bottom-right cell (row n-1, col n-1).

    `board` holds one integer code per cell. What the codes mean is not given: moves may fail
    or send the agent elsewhere depending on the cell it moves from, some cells block movement,
    some end the episode. The board is fixed for the whole episode (it does not show the agent).
    The episode is cut off after n * n steps.
    """

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.float32)
        self.n = int(round(np.sqrt(len(raw) - 4)))            # side length of the grid
        scale = self.n - 1
        self.agent_row = int(round(float(raw[0]) * scale))    # 0 = top row
        self.agent_col = int(round(float(raw[1]) * scale))    # 0 = left column
        self.goal_row = int(round(float(raw[2]) * scale))
        self.goal_col = int(round(float(raw[3]) * scale))
        # board[r, c] is the integer code of the cell in row r, column c.
        self.board = np.asarray(raw[4:], dtype=np.float32).reshape(self.n, self.n).astype(int)

    def cell(self, row: int, col: int) -> int:
        return int(self.board[row, col])
