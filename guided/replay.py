"""Transitions the agent did not take itself (the guide's measured episodes, jump-start's
roll-ins) into SAC's replay buffer, stored as SAC stores its own: raw observations and rewards
(a normaliser applies when batches are drawn), actions in [-1, 1], time limits marked as such."""
from __future__ import annotations

import numpy as np


def store(model, obs, next_obs, actions, rewards, terminated, truncated) -> int:
    """Add N transitions (arrays with N rows), n_envs rows per `add`; a remainder that does not
    fill a row of n_envs is left out. Returns how many were added."""
    buf = model.replay_buffer
    obs, next_obs = np.asarray(obs), np.asarray(next_obs)
    acts = model.policy.scale_action(np.asarray(actions, dtype=np.float32))
    rewards, terminated, truncated = (np.asarray(x) for x in (rewards, terminated, truncated))
    done = (terminated | truncated).astype(np.float32)
    n = len(obs) - len(obs) % buf.n_envs
    for i in range(0, n, buf.n_envs):
        sl = slice(i, i + buf.n_envs)
        buf.add(obs[sl], next_obs[sl], acts[sl], rewards[sl], done[sl],
                [{"TimeLimit.truncated": bool(t and not d)} for t, d in zip(truncated[sl], terminated[sl])])
    return n
