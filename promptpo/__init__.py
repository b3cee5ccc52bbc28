"""PromptPO (Hatgis-Kessell & Brunskill, 2026): an LLM writes executable policy code from
Python descriptions of observation, action and reward, sees rollout feedback, and rewrites it."""
