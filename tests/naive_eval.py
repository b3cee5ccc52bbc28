"""The control of the tamper tests: what an evaluator that runs the policy in the same process as
the environment (this project's design before the evaluator/policy split, and the reference
implementation's) would report for a policy. Run as a script so the attacks only patch this
throw-away process:

    python tests/naive_eval.py '{"env": {...}, "source": "...", "seeds": [0, 1]}'

prints {"returns": [...]} computed with the env description's reward, as PromptPO ranks them.
"""
from __future__ import annotations

import json
import sys

from llmrl.envs.spec import EnvSpec


def main() -> None:
    job = json.loads(sys.argv[1])
    spec = EnvSpec(**job["env"])
    env, desc = spec.make(), spec.describe()
    wrap, reward = desc.observation_class, desc.reward_fn
    namespace: dict = {"__name__": "policy_module"}
    exec(compile(job["source"], "<policy>", "exec"), namespace)
    cls = [v for v in namespace.values() if isinstance(v, type) and v.__module__ == "policy_module" and hasattr(v, "act")][-1]
    policy = cls()
    returns = []
    for seed in job["seeds"]:
        obs, info = env.reset(seed=seed)
        total, steps, done = 0.0, 0, False
        while not done and steps < 5000:
            action = policy.act(wrap(obs))
            next_obs, _, terminated, truncated, info = env.step(action)
            total += reward(wrap(obs), action, wrap(next_obs), info)
            obs, done, steps = next_obs, terminated or truncated, steps + 1
        returns.append(total)
    print(json.dumps({"returns": returns}))


if __name__ == "__main__":
    main()
