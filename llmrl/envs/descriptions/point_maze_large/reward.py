# include: ../_shared/point_maze_reward.py
