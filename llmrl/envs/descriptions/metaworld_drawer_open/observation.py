# Meta-World MT1 drawer-open-v3. Task: Grab the drawer's handle and pull the drawer open by 0.2 m.
# The object in the observation is the drawer handle.
# include: ../_shared/metaworld_observation.py
