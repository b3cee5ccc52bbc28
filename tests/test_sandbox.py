"""The hostile-code corpus: each case gets its own clear message, nothing escapes, and the
next candidate in the same sandbox still runs. Real bubblewrap, real seccomp, real rlimits."""
from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import pytest

from llmrl.errors import ConfigError
from llmrl.sandbox import Sandbox, SandboxSettings

CARTPOLE = {"name": "cartpole", "gym_id": "CartPole-v1", "horizon": 500, "description": "cartpole"}
PENDULUM = {"name": "pendulum", "gym_id": "Pendulum-v1", "horizon": 200, "description": "pendulum"}
GOOD = """
class CartPolePolicy:
    def act(self, obs):
        return 1 if obs.pole_angle + 0.5 * obs.pole_angular_velocity > 0 else 0
"""


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    settings = SandboxSettings(act_timeout_s=0.5, init_timeout_s=2.0, episode_timeout_s=20.0, job_timeout_s=30.0,
                               cpu_s=30, memory_mb=512, max_output_kb=256, workers=2)
    with Sandbox(settings, tmp_path_factory.mktemp("sandbox")) as sb:
        yield sb


def run(sb, source, env=CARTPOLE, seeds=(0,)):
    result = sb.run(sb.job(env, source, list(seeds)))
    after = sb.run(sb.job(CARTPOLE, GOOD, [0]))
    assert after["ok"] and after["returns"] == [500.0], f"the next candidate must still run: {after}"
    return result


def test_runs_under_bubblewrap(sandbox):
    assert sandbox.mode == "bwrap", f"tests must exercise bubblewrap ({sandbox.mode_reason}); `make setup` installs it"


def test_good_policy_and_steps(sandbox):
    r = sandbox.run(sandbox.job(CARTPOLE, GOOD, [0, 1, 2]))
    assert r["ok"] and r["returns"] == [500.0] * 3 and r["steps"] == 1500 and r["lengths"] == [500] * 3


def test_infinite_loop_in_act(sandbox):
    r = run(sandbox, "class P:\n    def act(self, obs):\n        while True:\n            pass\n")
    assert r["error"]["kind"] == "timeout" and "act() call took longer than 0.5 s" in r["error"]["message"]


def test_infinite_loop_in_init(sandbox):
    r = run(sandbox, "class P:\n    def __init__(self):\n        while True:\n            pass\n    def act(self, obs):\n        return 0\n")
    assert r["error"]["kind"] == "timeout" and "__init__" in r["error"]["message"]


def test_fork_bomb(sandbox):
    r = run(sandbox, "import os\nclass P:\n    def act(self, obs):\n        while True:\n            os.fork()\n")
    assert r["error"]["kind"] == "exception" and "forbids new processes" in r["error"]["message"]


def test_spawning_a_shell(sandbox, tmp_path):
    marker = tmp_path / "shell_was_here"
    src = f"import subprocess\nclass P:\n    def act(self, obs):\n        subprocess.run(['sh', '-c', 'touch {marker}'])\n        return 0\n"
    r = run(sandbox, src)
    assert "PermissionError" in r["error"]["message"] and "forbids new processes" in r["error"]["message"]
    assert not marker.exists()


def test_ten_gigabyte_allocation(sandbox):
    r = run(sandbox, "import numpy as np\nclass P:\n    def act(self, obs):\n        self.x = np.ones(10 * 2**30 // 8)\n        return 0\n")
    assert r["error"]["kind"] == "memory" and "more memory than the sandbox allows" in r["error"]["message"]


def test_api_key_in_parent_environment_does_not_reach_the_policy(sandbox, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    src = ("import os\nclass P:\n    def act(self, obs):\n        print(sorted(os.environ))\n"
           "        if 'OPENAI_API_KEY' in os.environ or any('sk-secret' in v for v in os.environ.values()):\n"
           "            raise RuntimeError('LEAKED')\n        return 0\n")
    r = run(sandbox, src)
    assert r["ok"], r["error"]
    assert "OPENAI_API_KEY" not in r["output"] and "PATH" in r["output"]


def test_socket_to_a_listening_port_gets_nothing(sandbox):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    arrived = []

    def accept():
        for _ in range(25):
            try:
                conn, _ = listener.accept()
                arrived.append(conn)
            except OSError:
                pass

    t = threading.Thread(target=accept)
    t.start()
    src = f"import socket\nclass P:\n    def act(self, obs):\n        socket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'hi')\n        return 0\n"
    r = run(sandbox, src)
    t.join()
    listener.close()
    assert not arrived, "a connection from the sandbox reached the host"
    assert r["error"]["kind"] == "exception" and ("PermissionError" in r["error"]["message"] or "refused" in r["error"]["message"])


def test_writing_outside_scratch_changes_nothing(sandbox, tmp_path):
    target = tmp_path / "outside.txt"
    target.write_text("original")
    src = f"class P:\n    def act(self, obs):\n        open({str(target)!r}, 'w').write('owned')\n        return 0\n"
    r = run(sandbox, src)
    assert target.read_text() == "original" and r["error"] is not None  # /tmp is a private tmpfs inside
    home = Path.home() / "llmrl_sandbox_probe"
    r = run(sandbox, f"class P:\n    def act(self, obs):\n        open({str(home)!r}, 'w').write('x')\n        return 0\n")
    assert not home.exists() and "are writable" in r["error"]["message"]


def test_scratch_is_writable(sandbox):
    r = run(sandbox, "class P:\n    def __init__(self):\n        open('notes.txt', 'w').write('ok')\n    def act(self, obs):\n        return 0\n")
    assert r["ok"], r["error"]


def test_hundred_megabyte_print(sandbox):
    r = run(sandbox, "class P:\n    def act(self, obs):\n        print('x' * 100_000_000)\n        return 0\n")
    assert r["error"]["kind"] == "output" and "more output than the sandbox allows" in r["error"]["message"]


@pytest.mark.parametrize("action, needle", [
    ("float('nan') * np.ones(1)", "non-finite"),
    ("np.zeros(3)", "expected shape (1,)"),
    ("np.array([5.0])", "outside the bounds"),
    ("'left'", "not numbers"),
])
def test_invalid_continuous_actions(sandbox, action, needle):
    r = run(sandbox, f"import numpy as np\nclass P:\n    def act(self, obs):\n        return {action}\n", env=PENDULUM)
    assert r["error"]["kind"] == "invalid_action" and needle in r["error"]["message"] and "Box(" in r["error"]["message"]


@pytest.mark.parametrize("action, needle", [("0.5", "expected an int"), ("7", "outside [0, 1]"), ("None", "expected an int")])
def test_invalid_discrete_actions(sandbox, action, needle):
    r = run(sandbox, f"class P:\n    def act(self, obs):\n        return {action}\n")
    assert r["error"]["kind"] == "invalid_action" and needle in r["error"]["message"] and "Discrete(2)" in r["error"]["message"]


def test_exception_deep_in_a_helper_points_at_the_line(sandbox):
    src = ("def helper(x):\n    return inner(x)\n\ndef inner(x):\n    return x['missing']\n\n"
           "class P:\n    def act(self, obs):\n        return helper({})\n")
    r = run(sandbox, src)
    assert r["error"]["kind"] == "exception" and "KeyError" in r["error"]["message"]
    tb = r["error"]["traceback"]
    assert "line 5, in inner" in tb and "line 2, in helper" in tb and "line 9, in act" in tb
    assert "llmrl" not in tb  # only the LLM's own code is shown


def test_syntax_error_and_missing_class(sandbox):
    r = run(sandbox, "class P:\n    def act(self, obs)\n        return 0\n")
    assert r["error"]["kind"] == "syntax" and "line 2" in r["error"]["message"]
    r = run(sandbox, "x = 1\n")
    assert r["error"]["kind"] == "no_class"


def test_policy_persists_across_episodes(sandbox):
    src = ("class P:\n    def __init__(self):\n        self.episodes = 0\n        self.last = None\n"
           "    def act(self, obs):\n        if self.last is None or obs.cart_position == 0 and False:\n            pass\n"
           "        self.calls = getattr(self, 'calls', 0) + 1\n        return 0 if self.calls < 100000 else 1\n")
    r = sandbox.run(sandbox.job(CARTPOLE, src, [0, 1]))
    assert r["ok"] and len(r["returns"]) == 2


def test_process_fallback_drops_root_moves_home_and_says_what_it_cannot_hide(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "secret")
    src = ("import json, os\nclass P:\n    def __init__(self):\n        print(json.dumps({'uid': os.getuid(), "
           "'home': os.environ.get('HOME'), 'cwd': os.getcwd(), 'keys': [k for k in os.environ if 'KEY' in k]}))\n"
           "    def act(self, obs):\n        return 0\n")
    with caplog.at_level("WARNING"), Sandbox(SandboxSettings(backend="process", workers=1), tmp_path / "p") as sb:
        assert sb.mode == "process"
        seen = json.loads(sb.run(sb.job(CARTPOLE, src, [0]))["output"])
        assert sb.run(sb.job(CARTPOLE, GOOD, [0]))["returns"] == [500.0]
    assert "What it cannot hide" in caplog.text and "SANDBOX WITHOUT NAMESPACES" in caplog.text
    if os.getuid() == 0:
        assert seen["uid"] == SandboxSettings().uid
    assert seen["home"] == seen["cwd"] != os.environ.get("HOME") and seen["keys"] == []
    with pytest.raises(ConfigError, match="contradicts"):
        Sandbox(SandboxSettings(backend="process", require_namespaces=True), tmp_path / "q")


def test_what_reaches_a_prompt_is_capped(sandbox):
    caps = sandbox.settings.caps
    src = ("class Feedback:\n    def summarize_trajectory(self, traj):\n        return 'y' * 100_000\n")
    r = sandbox.run(sandbox.job(CARTPOLE, "class P:\n    def act(self, obs):\n        print('x' * 1000)\n        return 0\n",
                                [0], feedback_source=src))
    assert len(r["output"]) == caps.output_chars and len(r["feedback"][0]) == caps.summary_chars
    deep = "def f(n):\n    return f(n + 1) if n < 400 else {}['k' * 100_000]\nclass P:\n    def act(self, obs):\n        return f(0)\n"
    r = sandbox.run(sandbox.job(CARTPOLE, deep, [0]))
    assert r["error"]["kind"] == "exception" and len(r["error"]["message"]) == caps.message_chars
    assert 0 < len(r["error"]["traceback"]) <= caps.traceback_chars
