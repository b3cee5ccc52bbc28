# Gymnasium-Robotics PointMaze_Large_Diverse_G-v3: the goal of an episode is one of several
# goal-capable cells of the maze, drawn at reset.
# include: ../_shared/point_maze_observation_class.py
