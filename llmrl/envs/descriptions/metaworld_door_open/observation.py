# Meta-World MT1 door-open-v3. Task: Open a hinged door by pulling its handle around until the door has swung open.
# The object in the observation is the door handle.
# include: ../_shared/metaworld_observation.py
