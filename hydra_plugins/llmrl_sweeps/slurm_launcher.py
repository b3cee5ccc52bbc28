"""hydra-submitit-launcher's SLURM launcher with two additions: the sweep record lists every run
as `pending` (with its SLURM array job id) when the array is submitted, and SLURM's pre-timeout /
preemption signal marks the run `preempted` before submitit requeues it. The requeued job runs
the same overrides; the runner sees a multirun and resumes the run directory from its checkpoint."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, filter_overrides
from omegaconf import open_dict
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as _SubmititSlurm

from llmrl.sweeps import record


class SlurmLauncher(_SubmititSlurm):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        # Absolute paths, fixed before the launcher is pickled into the jobs.
        self.sweep_dir = str(Path(str(self.config.hydra.sweep.dir)).resolve())
        self.params["additional_parameters"] = {"chdir": os.getcwd(), **(self.params.get("additional_parameters") or {})}
        for i, overrides in enumerate(job_overrides):
            record.update(Path(self.sweep_dir), self._run_dir(overrides, initial_job_idx + i), status="pending",
                          overrides=list(filter_overrides(overrides)), job_num=initial_job_idx + i)
        HydraConfig.instance().set_config(self.config)
        return super().launch(job_overrides, initial_job_idx)

    def _run_dir(self, overrides: Sequence[str], num: int) -> Path:
        """Where the job will write: its config composed here as the job will compose it."""
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(cfg):
            cfg.hydra.job.num = num
            cfg.hydra.job.id = f"pending_{num}"
        HydraConfig.instance().set_config(cfg)
        return Path(self.sweep_dir) / str(cfg.hydra.sweep.subdir)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Called by submitit in the job when SLURM signals the time limit or a preemption."""
        if getattr(self, "sweep_dir", None) is not None and HydraConfig.initialized():
            run_dir = Path(HydraConfig.get().runtime.output_dir)
            record.update(Path(self.sweep_dir), run_dir, status="preempted", slurm_job_id=record.slurm_job_id())
        return super().checkpoint(*args, **kwargs)
