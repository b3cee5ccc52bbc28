"""What can stop a run on the LLM side. Each message says what happened and what to change."""
from llmrl.errors import ConfigError


class LLMRequestError(ConfigError):
    """A request failed for good: a non-retryable error (auth, bad request, context length)
    or a transient one that outlasted every retry."""


class LLMReplayMiss(ConfigError):
    """`llm.cache=replay` met a request that is not in the cache."""


class LLMBudgetExhausted(Exception):
    """`llm.budget_usd` or `llm.max_calls` is reached: the method stops at a clean boundary."""
