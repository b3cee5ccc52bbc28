# include: ../mujoco_walker2d/observation.py
