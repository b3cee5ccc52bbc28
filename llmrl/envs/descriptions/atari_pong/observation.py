import numpy as np


class PongObservation:
    """One observation of Atari Pong after the standard preprocessing: the last 4 frames,
    each an 84 x 84 grayscale image (uint8, 0-255), oldest first. You control the right
    (green) paddle; the opponent is the left paddle. A game ends when one side reaches 21.

    Helpers read positions off the newest frame; the same values are available exactly from
    the console RAM in info["ram"] (ball x: ram[49], ball y: ram[54], your paddle y: ram[51],
    opponent paddle y: ram[50], your score: ram[14], opponent score: ram[13]).
    """

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.uint8)
        self.frames = self.raw                 # shape (4, 84, 84)
        self.latest = self.raw[-1]             # newest frame, shape (84, 84)
