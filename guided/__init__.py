"""RL started from a guide policy written by an LLM (or by hand): jump-start RL (Uchendu et al.,
2023), behaviour cloning then fine-tuning, and residual RL, with PPO or SAC, every phase's env
steps on one curve; the guide acts from a sandboxed process, never in the trainer's."""
