# NoiseWorld board of side n = ${n}: the raw observation has 6 + n * n values, the four position
# scalars, then `board`, then two trailing progress flags.
# Only the labels 0, 1, 2, 3, 4, 5, 6 and 7 occur in `board`. Labels 6 and 7 are special: each
# marks exactly one cell. The large positive reward for stepping onto the goal is paid only if the
# agent has first stepped onto the cell labelled 6 and later onto the cell labelled 7, in that
# order (visiting 7 before 6 does not count).
# prereq_first_done is 1.0 once the agent has visited the cell labelled 6 this episode, else 0.0;
# prereq_second_done is 1.0 once it has visited the cell labelled 7 after that, else 0.0.
# include: ../_shared/noise_world_observation_class.py
