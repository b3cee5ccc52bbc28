# Gymnasium-Robotics PointMaze (the PointMaze_Large-v3 task with a maze map of this project's own).
# The maze is NOT the PointMaze_Large / LARGE_MAZE layout of the Farama documentation or any other
# published diagram: do not assume a published layout. Its walls and free cells are not given.
# include: ../_shared/point_maze_observation_class.py
