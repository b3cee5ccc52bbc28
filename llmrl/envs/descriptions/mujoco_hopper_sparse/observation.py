# include: ../mujoco_hopper/observation.py
