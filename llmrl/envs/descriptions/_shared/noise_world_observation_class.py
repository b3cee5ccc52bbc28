import numpy as np


class NoiseWorldObservation:
    """What act(obs) receives on a NoiseWorld board.

    agent_row, agent_col -- the agent's cell, as floats in [0, 1] (row and column divided by n - 1)
    goal_row, goal_col   -- the goal's cell, normalised the same way (fixed for the board)
    board                -- numpy array of n * n floats, one integer label per cell in row-major
                            order (cell (r, c) is board[r * n + c]); the same at every step
    prereq_first_done, prereq_second_done -- the two trailing values of the raw vector on boards
                            that have them (0.0 on the others)
    raw                  -- the raw observation vector
    """

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.float64).reshape(-1)
        extra = 0 if int(np.sqrt(len(self.raw) - 4)) ** 2 == len(self.raw) - 4 else 2
        cells = len(self.raw) - 4 - extra
        self.agent_row = float(self.raw[0])
        self.agent_col = float(self.raw[1])
        self.goal_row = float(self.raw[2])
        self.goal_col = float(self.raw[3])
        self.board = self.raw[4:4 + cells].copy()
        self.prereq_first_done = float(self.raw[-2]) if extra else 0.0
        self.prereq_second_done = float(self.raw[-1]) if extra else 0.0
