# NoiseWorld board of side n = ${n}: the raw observation has 6 + n * n values, the four position
# scalars, then `board`, then two trailing scalars (prereq_first_done, prereq_second_done).
# Only the labels 0, 1, 2, 3, 4, 5, 6 and 7 occur in `board`.
# include: ../_shared/noise_world_observation_class.py
