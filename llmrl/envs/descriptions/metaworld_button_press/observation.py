# Meta-World MT1 button-press-v3. Task: Press a button on a box mounted on the table by pushing it in along y (towards +y).
# The object in the observation is the button.
# include: ../_shared/metaworld_observation.py
