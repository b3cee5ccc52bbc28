"""Generated code cannot change its own score, see what it does not need, or leave anything for
the next evaluation. Real bubblewrap, real seccomp, the real evaluator.

The tamper corpus: every policy below acts like a known honest policy (always push left on
CartPole, zero torque on Hopper) while it attacks the evaluation. Each must get exactly the honest
policy's returns, or fail with a message that names tampering. Where the attack targets what an
in-process evaluator holds (the env, its wrappers, the reward function), `tests/naive_eval.py`
shows that it does inflate a naive evaluation, so the test cannot pass by an attack being
harmless."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from llmrl.sandbox import Sandbox, SandboxSettings
from tests.conftest import REPO

CARTPOLE = {"name": "cartpole", "gym_id": "CartPole-v1", "horizon": 500, "description": "cartpole"}
HOPPER = {k: v for k, v in OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "env" / "mujoco_hopper.yaml")).items()
          if not k.startswith("_")}
SEEDS = [3, 4]
LEFT = "class CartPolePolicy:\n    def act(self, obs):\n        return 0\n"
ZERO = "import numpy as np\n\nclass HopperPolicy:\n    def act(self, obs):\n        return np.zeros(3)\n"
GOOD = ("class CartPolePolicy:\n    def act(self, obs):\n"
        "        return 1 if obs.pole_angle + 0.5 * obs.pole_angular_velocity > 0 else 0\n")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    settings = SandboxSettings(act_timeout_s=0.5, init_timeout_s=3.0, episode_timeout_s=20.0, job_timeout_s=40.0,
                               cpu_s=40, memory_mb=768, max_output_kb=1024, scratch_mb=32, workers=2)
    with Sandbox(settings, tmp_path_factory.mktemp("integrity")) as sb:
        sb.warm(CARTPOLE)
        yield sb


@pytest.fixture(scope="module")
def honest(sandbox):
    left = sandbox.run(sandbox.job(CARTPOLE, LEFT, SEEDS))
    zero = sandbox.run(sandbox.job(HOPPER, ZERO, SEEDS))
    assert left["ok"] and zero["ok"]
    assert max(left["returns"]) < 20  # always-left falls within a few steps
    return {"cartpole": left["returns"], "mujoco_hopper": zero["returns"]}


def naive(env: dict, source: str) -> list[float]:
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "naive_eval.py"),
                           json.dumps({"env": env, "source": source, "seeds": SEEDS})],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1])["returns"]


def honest_or_tampering(sandbox, honest, env, source):
    r = sandbox.run(sandbox.job(env, source, SEEDS))
    if r["ok"]:
        assert r["returns"] == honest[env["name"]], f"inflated: {r['returns']} vs honest {honest[env['name']]}"
    else:
        assert r["error"]["kind"] == "tampering" and "tampering" in r["error"]["message"], r["error"]
        assert r["returns"] == honest[env["name"]][:len(r["returns"])]
    after = sandbox.run(sandbox.job(CARTPOLE, GOOD, [0]))  # the next candidate is unaffected
    assert after["ok"] and after["returns"] == [500.0], after
    return r


# ---- attacks on what an in-process evaluator holds: each inflates the naive evaluation -------------
GC_REWRITE = """import gc
class CartPolePolicy:
    def __init__(self):
        self.envs = [o for o in gc.get_objects() if type(o).__name__ == 'CartPoleEnv']
    def act(self, obs):
        for env in self.envs:
            env.state = [0.0, 0.0, 0.0, 0.0]             # upright again, every step
        return 0
"""
ENV_CLASS_STEP = """from gymnasium.envs.classic_control.cartpole import CartPoleEnv
_step = CartPoleEnv.step
def _never_falls(self, action):
    obs, reward, terminated, truncated, info = _step(self, action)
    return obs, reward, False, truncated, info
CartPoleEnv.step = _never_falls
class CartPolePolicy:
    def act(self, obs):
        return 0
"""
WRAPPER_STEP = """import gymnasium
def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)
for cls in [gymnasium.Wrapper, *subclasses(gymnasium.Wrapper)]:
    if 'step' in vars(cls):
        def patched(self, action, _step=vars(cls)['step']):
            obs, reward, terminated, truncated, info = _step(self, action)
            return obs, reward, False, truncated, info
        cls.step = patched
class CartPolePolicy:
    def act(self, obs):
        return 0
"""
TIME_LIMIT = """import gc, gymnasium
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
_step = CartPoleEnv.step
CartPoleEnv.step = lambda self, a: (lambda o, r, t, tr, i: (o, r, False, tr, i))(*_step(self, a))
for o in gc.get_objects():
    if isinstance(o, gymnasium.wrappers.TimeLimit):
        o._max_episode_steps = 2000              # longer episodes than the env allows
class CartPolePolicy:
    def act(self, obs):
        return 0
"""
REWARD_FUNCTION = """import gc, types
class CartPolePolicy:
    def __init__(self):
        for o in gc.get_objects():
            if isinstance(o, types.FunctionType) and o.__name__ == 'reward' and o.__module__.startswith('llmrl_description'):
                o.__code__ = (lambda prev_obs, action, next_obs, info: 100.0).__code__
        import llmrl.envs.description as d
        d.Description.reward = lambda self, *a: 100.0
    def act(self, obs):
        return 0
"""


@pytest.mark.parametrize("source", [GC_REWRITE, ENV_CLASS_STEP, WRAPPER_STEP, TIME_LIMIT, REWARD_FUNCTION],
                         ids=["gc_rewrites_env_state", "env_class_step", "gymnasium_wrapper_step", "time_limit",
                              "described_reward_function"])
def test_attacks_on_the_evaluator_get_the_honest_return(sandbox, honest, source):
    inflated = naive(CARTPOLE, source)
    assert sum(inflated) > 10 * sum(honest["cartpole"]), f"the attack should work in-process: {inflated}"
    honest_or_tampering(sandbox, honest, CARTPOLE, source)


# ---- attacks on the policy's own process: nothing reaches the score -----------------------------
NUMPY_AND_BUILTINS = """import builtins, math, statistics, numpy as np
for name in ('isfinite', 'all', 'any', 'clip', 'sum', 'mean', 'round', 'isnan'):
    setattr(np, name, lambda *a, **k: 500.0)
builtins.sum = builtins.max = lambda *a, **k: 500.0
math.fsum = statistics.fmean = lambda *a, **k: 500.0
class CartPolePolicy:
    def act(self, obs):
        return 0
"""
SYS_MODULES = """import sys, types
fake = types.ModuleType('fake')
fake.__getattr__ = lambda name: (lambda *a, **k: 500.0)
for name in ('gymnasium', 'numpy', 'json', 'pickle', 'struct', 'llmrl.sandbox.protocol', 'llmrl.sandbox.actions',
             'llmrl.sandbox.child', 'llmrl.envs.description'):
    sys.modules[name] = fake
class CartPolePolicy:
    def act(self, obs):
        return 0
"""
MUTATE_OBSERVATION = """import numpy as np
class HopperPolicy:
    def act(self, obs):
        obs.raw[:] = 0.0
        obs.raw[0] = 1.25                 # 'healthy' height, whatever happens
        obs.torso_height = 1.25
        obs.raw.setflags(write=False)
        return np.zeros(3)
"""
FEEDBACK_EDITS = """import gc
class Feedback:
    def summarize_trajectory(self, traj):
        for obs in traj:
            obs.raw[:] = 0.0
        traj.clear()
        for o in gc.get_objects():
            if isinstance(o, dict) and 'returns' in o:
                o['returns'] = [1e9]
        return 'edited'
"""


@pytest.mark.parametrize("env, source", [(CARTPOLE, NUMPY_AND_BUILTINS), (CARTPOLE, SYS_MODULES),
                                         (HOPPER, MUTATE_OBSERVATION)],
                         ids=["numpy_and_builtins", "sys_modules", "mutated_observation"])
def test_attacks_on_its_own_process_change_nothing(sandbox, honest, env, source):
    honest_or_tampering(sandbox, honest, env, source)


def test_feedback_class_cannot_edit_trajectories_or_scores(sandbox, honest):
    r = sandbox.run(sandbox.job(CARTPOLE, LEFT, SEEDS, feedback_source=FEEDBACK_EDITS))
    assert r["ok"] and r["returns"] == honest["cartpole"] and r["feedback"] == ["edited", "edited"]
    assert r["env_returns"] == honest["cartpole"]


def test_forged_frames_are_tampering(sandbox, honest):
    # the policy writes into its own channel: a frame the protocol does not allow there
    forged = """import os, struct
class CartPolePolicy:
    def act(self, obs):
        for fd in range(3, 64):
            try:
                os.write(fd, struct.pack('<IB', 2, ord('S')) + b'{}')
            except OSError:
                pass
        return 0
"""
    r = honest_or_tampering(sandbox, honest, CARTPOLE, forged)
    assert not r["ok"]
    huge = forged.replace("struct.pack('<IB', 2, ord('S')) + b'{}'", "struct.pack('<IB', 500_000_000, ord('D'))")
    r = honest_or_tampering(sandbox, honest, CARTPOLE, huge)
    assert not r["ok"] and "bytes" in r["error"]["message"]


def test_other_processes_memory_is_out_of_reach(sandbox, honest):
    source = """import ctypes, os
class CartPolePolicy:
    def __init__(self):
        libc = ctypes.CDLL(None, use_errno=True)
        parent = os.getppid()
        self.notes = [libc.ptrace(16, parent, 0, 0), ctypes.get_errno()]      # PTRACE_ATTACH
        try:
            open(f'/proc/{parent}/mem', 'r+b')
            self.notes.append('mem opened')
        except OSError as exc:
            self.notes.append(type(exc).__name__)
        print(self.notes)
    def act(self, obs):
        return 0
"""
    r = honest_or_tampering(sandbox, honest, CARTPOLE, source)
    assert "mem opened" not in r["output"] and "[-1, 1," in r["output"]


# ---- every evaluation starts clean --------------------------------------------------------------
POISON = """import os, signal
PAYLOAD = "raise SystemExit('poisoned')\\n"
class CartPolePolicy:
    def __init__(self):
        for folder in {os.getcwd(), os.environ.get('HOME', '.'), os.environ.get('TMPDIR', '.'), '/tmp'}:
            for name in ('json.py', 'numpy.py', 'gymnasium.py', 'sitecustomize.py', 'usercustomize.py'):
                try:
                    with open(os.path.join(folder, name), 'w') as f:
                        f.write(PAYLOAD)
                except OSError:
                    pass
        os.kill(os.getppid(), signal.SIGKILL)     # the warm parent restarts: does it import the files?
    def act(self, obs):
        return 0
"""
CHECK_CLEAN = """import json, os, sys
class CartPolePolicy:
    def __init__(self):
        found = []
        for root, dirs, files in os.walk('/tmp'):
            found += [os.path.join(root, f) for f in files]
        print(json.dumps({'files': found, 'json': json.__file__, 'path': sys.path}))
    def act(self, obs):
        return 1 if obs.pole_angle + 0.5 * obs.pole_angular_velocity > 0 else 0
"""


def test_a_poisoned_sandbox_is_pristine_for_the_next_candidate(sandbox, honest):
    honest_or_tampering(sandbox, honest, CARTPOLE, POISON)
    for _ in range(sandbox.workers):  # whichever worker it ran in
        r = sandbox.run(sandbox.job(CARTPOLE, CHECK_CLEAN, [0]))
        assert r["ok"] and r["returns"] == [500.0], r
        seen = json.loads(r["output"])
        assert seen["files"] == [] and not seen["json"].startswith("/tmp")
        assert not any(p in ("", ".") or p.startswith("/tmp") for p in seen["path"])


def test_timeouts_cannot_be_swallowed(sandbox):
    swallow = "class P:\n    def act(self, obs):\n        while True:\n            try:\n                pass\n            except:\n                pass\n"
    ignore = ("import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              "class P:\n    def act(self, obs):\n        while True:\n            pass\n")
    for source in (swallow, ignore):
        r = sandbox.run(sandbox.job(CARTPOLE, source, [0]))
        assert r["error"]["kind"] == "timeout" and "act() call took longer than 0.5 s" in r["error"]["message"]
        assert r["wall_s"] < 5.0  # the act limit, not the job's 40 s
    init = "class P:\n    def __init__(self):\n        while True:\n            try:\n                pass\n            except BaseException:\n                pass\n    def act(self, obs):\n        return 0\n"
    r = sandbox.run(sandbox.job(CARTPOLE, init, [0]))
    assert r["error"]["kind"] == "timeout" and "__init__" in r["error"]["message"] and r["wall_s"] < 8.0


def test_disk_is_capped_and_scratch_is_removed(sandbox, tmp_path):
    source = """import os
class CartPolePolicy:
    def __init__(self):
        written, error = 0, None
        try:
            for i in range(3000):
                with open(f'f{i}.bin', 'wb') as f:
                    f.write(b'x' * 1_000_000)
                written += 1
        except OSError as exc:
            error = exc.strerror
        print(written, error)
    def act(self, obs):
        return 0
"""
    before = _disk_use(sandbox.scratch_root)
    r = sandbox.run(sandbox.job(CARTPOLE, source, [0]))
    assert r["ok"]
    written, _ = r["output"].split(" ", 1)
    assert int(written) <= 34 and "No space left" in r["output"]  # sandbox.scratch_mb=32 (MiB) of 1 MB files
    assert _disk_use(sandbox.scratch_root) - before < 2_000_000  # nothing of it on the host's disk
    for _ in range(sandbox.workers):
        seen = json.loads(sandbox.run(sandbox.job(CARTPOLE, CHECK_CLEAN, [0]))["output"])
        assert seen["files"] == []


def _disk_use(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def test_syscalls_of_other_abis_are_refused_by_the_filter(sandbox):
    source = """import ctypes
class P:
    def __init__(self):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        ret = libc.syscall(ctypes.c_long(0x40000000 | 57))    # fork through the x32 ABI
        print(ret, ctypes.get_errno())
    def act(self, obs):
        return 0
"""
    r = sandbox.run(sandbox.job(CARTPOLE, source, [0]))
    assert r["ok"] and r["output"].split() == ["-1", "1"]  # EPERM from the filter (ENOSYS would be the kernel's)


# ---- it sees only what it needs, as an unprivileged uid ----------------------------------------
def test_the_sandbox_sees_only_what_it_needs(sandbox, tmp_path):
    secret = "SECRET-" + os.urandom(8).hex()
    planted = REPO / f".pytest-secret-{os.getpid()}"
    planted.mkdir()
    try:
        (planted / ".netrc").write_text(f"machine api.wandb.ai login user password {secret}\n")
        source = f"""import json, os
class P:
    def __init__(self):
        seen = {{'uid': os.getuid(), 'euid': os.geteuid(), 'root': sorted(os.listdir('/')), 'home': os.environ.get('HOME')}}
        for path in ('/etc/shadow', '/etc/passwd', '/root/.netrc', {str(planted / '.netrc')!r}, '/root/.ssh'):
            try:
                seen[path] = open(path).read()
            except OSError as exc:
                seen[path] = type(exc).__name__
        for path in ('/root', {str(REPO)!r}, '/home'):
            try:
                seen[path] = sorted(os.listdir(path))
            except OSError as exc:
                seen[path] = type(exc).__name__
        print(json.dumps(seen))
    def act(self, obs):
        return 0
"""
        r = sandbox.run(sandbox.job(CARTPOLE, source, [0]))
    finally:
        (planted / ".netrc").unlink()
        planted.rmdir()
    assert r["ok"], r["error"]
    seen = json.loads(r["output"])
    assert seen["uid"] != 0 and seen["euid"] != 0 and seen["uid"] == sandbox.uid
    assert set(seen["root"]) <= {"usr", "bin", "lib", "lib64", "sbin", "etc", "dev", "proc", "tmp", *REPO.parts[1:2],
                                 *Path(sys.base_prefix).parts[1:2], *Path(sys.prefix).parts[1:2]}
    for path in ("/etc/shadow", "/etc/passwd", "/root/.netrc", str(planted / ".netrc"), "/root/.ssh"):
        assert seen[path] in ("FileNotFoundError", "PermissionError"), (path, seen[path])
    assert set(seen["/root"]) <= {".pyenv"}  # only the way to a Python installed under /root, if that is where it is
    assert set(seen[str(REPO)]) <= {"llmrl", ".venv"}  # the project's code and packages, not runs/ or anything else
    assert secret not in r["output"]
