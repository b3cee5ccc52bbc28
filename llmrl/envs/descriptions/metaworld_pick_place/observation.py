# Meta-World MT1 pick-place-v3. Task: Grasp a puck, lift it and carry it to a target position in the air.
# The object in the observation is the puck.
# include: ../_shared/metaworld_observation.py
