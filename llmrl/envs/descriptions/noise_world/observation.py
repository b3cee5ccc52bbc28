# NoiseWorld board of side n = ${n}: the raw observation has 4 + n * n values, the four position
# scalars followed by `board`. Only the labels 0, 1, 2, 3, 4 and 5 occur in `board`.
# include: ../_shared/noise_world_observation_class.py
