"""State snapshots and restore (llmrl.envs.restore), per env family: after restoring a
snapshot into a fresh instance of the same spec, the same actions give exactly the same
observations, rewards, ends and time limits as the original run from that state."""
from __future__ import annotations

import numpy as np
import pytest

from llmrl.envs.restore import RestoreUnsupported, family, restore, snapshot
from tests.test_envs import load_spec

CASES = {  # env: (family, steps before the snapshot, steps compared after it)
    "mujoco_hopper": ("mujoco", 5, 40),
    "atari_pong": ("ale", 120, 150),
    "cartpole": ("classic", 5, 30),
    "pendulum": ("classic", 190, 15),   # crosses the 200-step time limit: the limit's count comes back too
    "noise_world_board_0": ("own", 3, 60),
    "pandemic": ("own", 20, 20),
    "traffic_merge": ("own", 40, 20),   # the fresh instance runs in a SUMO worker process (libsumo is taken)
}


def _same(a, b) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("env_name", sorted(CASES))
def test_restore_round_trip(env_name):
    fam, before, after = CASES[env_name]
    spec = load_spec(env_name)
    src = spec.make(seed=1)
    assert family(src) == fam
    space = src.action_space
    space.seed(3)
    obs, info = src.reset(seed=1)
    for _ in range(before):
        obs, _, term, trunc, info = src.step(space.sample())
        if term or trunc:
            obs, info = src.reset()
    snap = snapshot(src, obs, info)
    actions = [space.sample() for _ in range(after)]
    original = []
    for a in actions:
        out = src.step(a)
        original.append(out)
        if out[2] or out[3]:
            break
    if env_name == "pendulum":
        assert original[-1][3]  # the time limit ends pendulum where it did, and must do so after the restore
    for target in (spec.make(seed=7), src):  # a fresh instance, and the same one after it moved on
        target.reset(seed=7)
        o, i = restore(target, snap)
        assert _same(o, obs)
        for a, (o1, r1, te1, tr1, i1) in zip(actions, original):
            o2, r2, te2, tr2, i2 = target.step(a)
            assert _same(o1, o2) and r1 == r2 and (te1, tr1) == (te2, tr2)
            if "ram" in i1:
                assert _same(i1["ram"], i2["ram"]) and _same(i1["prev_ram"], i2["prev_ram"])
        target.close()


def test_unsupported_env_says_what_is_supported():
    env = load_spec("metaworld_reach").make(seed=0)
    env.reset(seed=0)
    with pytest.raises(RestoreUnsupported, match="Meta-World.*supports gymnasium MuJoCo, Atari"):
        snapshot(env, None)
    env.close()
