"""Every `python run.py` (and `make run` / `make sweep`) example in README.md works as written:
each composes (every value of a sweep included), and the ones that need no API key, no model
and no cluster run for real on tiny budgets."""
from __future__ import annotations

import re
import shlex

import pytest

from llmrl import cli
from tests.conftest import REPO, run_cli

TINY = {"method.total_steps": "512", "method.eval_every": "512", "env.eval_episodes": "1"}


def examples() -> list[str]:
    """The README's example command lines, comments stripped, as `python run.py ...` argument lists."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("python run.py"):
                found.append(line[len("python run.py"):].strip())
            elif line.startswith("make run ARGS=") or line.startswith("make sweep EXP="):
                words = shlex.split(line)
                args = next((w.split("=", 1)[1] for w in words if w.startswith("ARGS=")), "")
                exp = next((w.split("=", 1)[1] for w in words if w.startswith("EXP=")), None)
                # make run = the quickstart preset as a multirun (Makefile), make sweep = the EXP preset
                found.append(f"-m experiment={exp or 'quickstart'} " + args)
    return found


def test_the_readme_has_examples():
    assert len(examples()) >= 10


@pytest.mark.parametrize("line", examples())
def test_readme_example(line, tmp_path):
    args = shlex.split(line)
    if "--help" in args or "--cfg" in args:
        proc = run_cli(*args)
        assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr[-2000:]
        return
    assert cli.check(args) is None, f"python run.py {line}: {cli.check(args)}"
    keyless_rl = any(a in ("method=ppo", "method=sac") for a in args) and not any(
        a.startswith(("llm=", "hydra/launcher=", "resume=")) for a in args)
    if not keyless_rl:
        return  # needs a key, the local model or a cluster: composing is what can be checked here
    given = dict(a.split("=", 1) for a in args if "=" in a)
    extra = [f"{k}={v}" for k, v in TINY.items() if k not in given or "," not in given[k]]
    args = [a for a in args if a.split("=", 1)[0] not in TINY]
    where = f"hydra.sweep.dir={tmp_path}" if "-m" in args else f"hydra.run.dir={tmp_path / 'run'}"
    proc = run_cli(*args, *extra, where, "logger.progress=false", timeout=900)
    assert proc.returncode == 0, f"python run.py {line}:\n{proc.stderr[-3000:]}"
    assert list(tmp_path.rglob("summary.json"))
