# Meta-World MT1 reach-v3. Task: Move the gripper's tool-centre point to a target position in the air; the observed object is a puck that plays no role.
# The object in the observation is the puck (unused by this task).
# include: ../_shared/metaworld_observation.py
