"""Check an LLM backend end to end with the project's own config: start it (llm=local starts
the llama.cpp server), run the preflight, send one prompt, print the reply, tokens and cost.

    python scripts/llm_check.py llm=local
    python scripts/llm_check.py llm=gemini +prompt="Write a haiku about CartPole."
    python scripts/llm_check.py llm=vllm llm.api_base=http://gpu-node:8000/v1 llm.cache=off
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llmrl.identity import register_resolvers  # noqa: E402

register_resolvers()

DEFAULT_PROMPT = "Reply with one short sentence: what is reinforcement learning?"


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from llmrl.errors import ConfigError
    from llmrl.llm import open_llm

    if cfg.llm.name == "none":
        print("error: choose a backend, e.g. llm=local", file=sys.stderr)
        sys.exit(2)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    prompt = cfg.get("prompt", DEFAULT_PROMPT)
    try:
        with open_llm(cfg.llm, run_dir) as llm:
            reply = llm.complete([{"role": "user", "content": prompt}], tag="llm_check")
            usage = llm.usage
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(reply.text)
    print(json.dumps({"model": cfg.llm.model, "finish_reason": reply.finish_reason, "problem": reply.problem,
                      "prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                      "cost_usd": reply.cost_usd, "latency_s": reply.latency_s, "cached": reply.cached,
                      "http_calls": usage.http_calls, "transcript": str(run_dir / "transcript.jsonl")}, indent=2),
          file=sys.stderr)


if __name__ == "__main__":
    if not any(a.startswith("hydra.run.dir=") for a in sys.argv[1:]):  # keep checks apart from experiment runs
        sys.argv.append("hydra.run.dir=runs/llm_check/${llm.name}/${now:%Y-%m-%d_%H-%M-%S}")
    main()
