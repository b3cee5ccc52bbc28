"""RL baselines (PPO, SAC) on stable-baselines3, logging the same curves as the LLM methods."""
