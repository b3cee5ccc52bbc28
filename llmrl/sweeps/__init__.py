"""Sweeps: the sweep-level record (the SLURM launcher with its preemption hook is in
hydra_plugins/llmrl_sweeps, where Hydra looks for launchers)."""
