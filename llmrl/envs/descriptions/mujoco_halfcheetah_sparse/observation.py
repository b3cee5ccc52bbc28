# include: ../mujoco_halfcheetah/observation.py
