"""ULTRA (Tan, Yan & Yang, 2025): an LLM marks critical states in a sub-optimal PPO agent's
trajectories and suggests better actions (ULTRA-A), implicit rewards (ULTRA-R) or both
(ULTRA-RA) that steer PPO refinement; plus the refinement baselines in the same harness."""
