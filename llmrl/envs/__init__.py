"""Environments: the spec every method builds envs from, our own gymnasium envs, and the
LLM-facing descriptions (observation class, action text, reward source) per env."""
from llmrl.envs.description import Description, load_description
from llmrl.envs.spec import EnvSpec

__all__ = ["Description", "EnvSpec", "load_description"]
