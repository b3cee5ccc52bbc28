"""A minimal LLM-using method for exercising the runner's LLM path end to end (preflight,
curve columns, caps, cache replay) before the real LLM methods exist. It is a method under
test's stand-in, not a stand-in for anything external: every LLM call it makes is real HTTP."""
from __future__ import annotations

from typing import Any


class LLMProbeMethod:
    needs_llm = True
    extra_columns: list[str] = []

    def __init__(self, name: str = "llm_probe", rounds: int = 3, samples: int = 2, **_ignored: Any) -> None:
        self.name, self.rounds, self.samples = name, rounds, samples

    def budget(self, spec) -> int:
        return self.rounds

    def train(self, ctx, checkpoint) -> dict[str, Any]:
        for r in range(self.rounds):
            replies = ctx.llm.sample([{"role": "user", "content": f"round {r}: say something"}], n=self.samples, tag=f"round{r}")
            score = sum(len(c.text) for c in replies) / len(replies)
            ctx.tracker.log_point(env_steps=r + 1, return_mean=float(score), **ctx.llm.usage.curve_columns())
        return {}
