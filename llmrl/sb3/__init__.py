"""What every stable-baselines3-based method shares (the PPO/SAC baselines and ULTRA's
pre-training and refinement): per-env hyperparameter tables and the counted, optionally
normalised training envs."""
