"""A do-nothing pandemic policy: keeps the stage at 0 for the whole episode (the reference point for what a
regulation policy gains). python scripts/evaluate_policy.py examples/realworld/keep_stage.py env=pandemic"""


class PandemicPolicy:
    def act(self, obs):
        return 1   # keep the stage
