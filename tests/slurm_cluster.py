"""A one-node SLURM cluster on loopback for the tests, from Debian's slurm-wlm and munge
(installed by `make setup`; nothing is installed here). Started once per test session, stopped
at its end; everything it writes lives in one temporary directory."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")


def missing_tools() -> list[str]:
    return [t for t in (*DAEMONS, "mungekey", "sbatch", "sinfo", "squeue", "scontrol") if shutil.which(t) is None
            and not Path(f"/usr/sbin/{t}").exists()]


def _tool(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


@dataclass
class Cluster:
    root: Path
    conf: Path
    env: dict[str, str]
    procs: list[subprocess.Popen]

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, check=check, timeout=60)

    def jobs(self) -> list[str]:
        out = self.run("squeue", "-h", "-o", "%i %T").stdout
        return [line for line in out.splitlines() if line.strip()]

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.root.glob("*.log")))


def _slurm_conf(root: Path, cpus: int, memory_mb: int) -> str:
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
    return f"""ClusterName=llmrltest
SlurmctldHost=localhost
SlurmUser={user}
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
KillWait=5
SlurmctldPort=16817
SlurmdPort=16818
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MinJobAge=300
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def start(root: Path, timeout_s: float = 60) -> Cluster:
    root.mkdir(parents=True, exist_ok=True)
    for d in ("state", "spool", "munge"):
        (root / d).mkdir(exist_ok=True)
    cpus = os.cpu_count() or 1
    memory_mb = max(1000, int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8))
    conf = root / "slurm.conf"
    conf.write_text(_slurm_conf(root, cpus, memory_mb))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    procs: list[subprocess.Popen] = []
    # munge: its own key, socket and state in the temp dir
    key, socket = root / "munge" / "munge.key", root / "munge" / "munge.socket"
    subprocess.run([_tool("mungekey"), "-c", "-k", str(key)], check=True, capture_output=True)
    os.chmod(key, 0o400)
    for p in (root / "munge",):
        os.chmod(p, 0o700)
    procs.append(subprocess.Popen([_tool("munged"), "-F", "--force", f"--key-file={key}", f"--socket={socket}",
                                   f"--pid-file={root / 'munge' / 'munged.pid'}", f"--log-file={root / 'munged.log'}",
                                   f"--seed-file={root / 'munge' / 'munged.seed'}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
    env["MUNGE_SOCKET"] = str(socket)  # not read by slurm; slurm.conf's AuthInfo points at it
    conf.write_text(conf.read_text() + f"AuthInfo=socket={socket}\n")
    _wait(lambda: socket.exists(), 10, "munged did not create its socket", root)
    procs.append(subprocess.Popen([_tool("slurmctld"), "-D", "-i", "-f", str(conf)], env=env,
                                  stdout=open(root / "slurmctld.out.log", "w"), stderr=subprocess.STDOUT))
    procs.append(subprocess.Popen([_tool("slurmd"), "-D", "-f", str(conf)], env=env,
                                  stdout=open(root / "slurmd.out.log", "w"), stderr=subprocess.STDOUT))
    cluster = Cluster(root, conf, env, procs)

    def idle() -> bool:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout.strip()
        return out in ("idle", "mix", "alloc")

    _wait(idle, timeout_s, "the SLURM node did not become idle", root, cluster)
    return cluster


def _wait(cond, timeout_s: float, message: str, root: Path, cluster: Cluster | None = None) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.5)
    logs = cluster.logs() if cluster else ""
    if cluster:
        stop(cluster)
    raise RuntimeError(f"{message} within {timeout_s:.0f} s (logs in {root})\n{logs}")


def stop(cluster: Cluster) -> None:
    subprocess.run(["scancel", "--user", os.environ.get("USER", "root") if os.geteuid() else "root"], env=cluster.env,
                   capture_output=True)
    for p in reversed(cluster.procs):
        p.terminate()
    for p in reversed(cluster.procs):
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
