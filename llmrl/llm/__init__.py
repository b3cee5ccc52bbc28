"""The LLM layer every LLM method uses: one client over litellm with concurrent sampling,
retries, accounting, hard caps, a persistent response cache with replay, a transcript of every
call, and a local llama.cpp model that runs offline. `open_llm(cfg, run_dir)` builds it."""
from llmrl.llm.client import Completion, LLMClient, Usage
from llmrl.llm.errors import LLMBudgetExhausted, LLMReplayMiss, LLMRequestError
from llmrl.llm.factory import open_llm

__all__ = ["Completion", "LLMBudgetExhausted", "LLMClient", "LLMReplayMiss", "LLMRequestError", "Usage", "open_llm"]
