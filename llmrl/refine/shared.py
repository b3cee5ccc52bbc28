"""One sub-optimal agent per seed, shared by every refinement method of a sweep.

Methods compared on "the same agent" must start from the same weights, not from agents trained
alike: with `share_pretrained: <dir>` the first job of a seed trains the agent and publishes it
under `<dir>/<env>/seed<k>-<digest>/`; every other job of that seed and configuration waits for
it (a POSIX lock on the entry) and loads it, with the pre-training curve points, so its own
curve starts with the same phase 0. The digest covers everything that shapes the agent (env
config, seed, pre-training budget, PPO hyperparameters, schedule span, evaluation settings): a
sweep that changes any of them gets a separate entry, never a wrong one.

The lock needs a filesystem where `flock` works between the machines of a cluster (local disk,
NFSv4, Lustre mounted with `flock`); on one without it, leave share_pretrained null and point
`pretrained_path` at an agent trained once instead."""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)
META = "meta.json"
POINTS = "curve_points.json"


def digest(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


class SharedPretrained:
    def __init__(self, root: Path, env_name: str, seed: int, identity: dict[str, Any]) -> None:
        self.identity = identity
        self.key = digest(identity)
        self.dir = Path(root).expanduser().resolve() / env_name / f"seed{seed}-{self.key[:12]}"

    @contextmanager
    def claim(self, who: str) -> Iterator[None]:
        """Exclusive while training or reading the entry; others of the seed wait here. The OS
        drops the lock of a killed job, so a waiter then trains the agent itself."""
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.dir.with_name(self.dir.name + ".lock")
        with open(lock_path, "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                holder = lock.read().strip() or "another job"
                log.info("waiting for the shared sub-optimal agent %s (being trained by %s)", self.dir, holder)
                start = time.monotonic()
                fcntl.flock(lock, fcntl.LOCK_EX)
                log.info("shared sub-optimal agent lock taken after %.0f s", time.monotonic() - start)
            lock.seek(0)
            lock.truncate()
            lock.write(who)
            lock.flush()
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @property
    def ready(self) -> bool:
        return (self.dir / META).is_file()

    def publish(self, files: Path, points: list[dict[str, Any]], meta: dict[str, Any]) -> None:
        """Copy the agent's files and curve points in, atomically (a folder renamed into place)."""
        tmp = self.dir.with_name(f".{self.dir.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(files, tmp)
        (tmp / POINTS).write_text(json.dumps(points, default=float))
        (tmp / META).write_text(json.dumps({**meta, "identity": self.identity, "key": self.key}, indent=1, default=str))
        tmp.rename(self.dir)

    def load(self, into: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        into.mkdir(parents=True, exist_ok=True)
        for f in self.dir.iterdir():
            if f.name not in (META, POINTS):
                shutil.copy2(f, into / f.name)
        return json.loads((self.dir / POINTS).read_text()), json.loads((self.dir / META).read_text())
