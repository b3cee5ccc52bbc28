# Meta-World MT1 push-v3. Task: Push a puck across the table to a target position (grasping it is allowed, not needed).
# The object in the observation is the puck.
# include: ../_shared/metaworld_observation.py
