"""StateMask (Cheng et al., NeurIPS 2023) explanations and the refinement methods built on them:
StateMask-R and RICE (Cheng et al., ICML 2024), the baselines ULTRA is compared with."""
