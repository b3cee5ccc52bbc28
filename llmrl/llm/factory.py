"""Builds the LLM side of a run from `conf/llm/*.yaml`, checked before any environment work:
settings validated, credentials present, endpoint answering (or the local server started),
cache and transcript opened. Used as a context manager so a local server always stops."""
from __future__ import annotations

import logging
import os
from contextlib import ExitStack, contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any, Iterator

import httpx
from omegaconf import DictConfig, OmegaConf

from llmrl.errors import ConfigError
from llmrl.llm.cache import MODES, ResponseCache
from llmrl.llm.client import LLMClient, LLMSettings
from llmrl.llm.transcript import Transcript

log = logging.getLogger(__name__)
TRANSCRIPT_FILE = "transcript.jsonl"
PLACEHOLDER_KEY = "no-key"  # OpenAI-compatible servers without auth still need a non-empty key


def _plain(cfg: DictConfig | dict) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


_FROM_SERVER = ("concurrency", "samples_per_request")


def settings_from(cfg: dict[str, Any]) -> LLMSettings:
    known = {f.name for f in fields(LLMSettings)}
    # null concurrency / samples_per_request: decided by the local server once it knows its slots
    s = LLMSettings(**{k: v for k, v in cfg.items() if k in known and not (v is None and k in _FROM_SERVER)})
    checks = [
        (s.samples_per_request >= 1, f"llm.samples_per_request={s.samples_per_request} must be >= 1"),
        (s.concurrency >= 1, f"llm.concurrency={s.concurrency} must be >= 1"),
        (s.max_tokens >= 1, f"llm.max_tokens={s.max_tokens} must be >= 1"),
        (s.temperature >= 0, f"llm.temperature={s.temperature} must be >= 0"),
        (s.timeout_s > 0, f"llm.timeout_s={s.timeout_s} must be > 0"),
        (s.max_retries >= 0, f"llm.max_retries={s.max_retries} must be >= 0"),
        (s.budget_usd is None or s.budget_usd >= 0, f"llm.budget_usd={s.budget_usd} must be >= 0 or null (no cap)"),
        (s.max_calls is None or s.max_calls >= 0, f"llm.max_calls={s.max_calls} must be >= 0 or null (no cap)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    return s


def preflight(s: LLMSettings, cache_mode: str) -> str | None:
    """The API key to use. Fails with one line if the key is missing or the endpoint is silent.
    A replay needs neither: every answer comes from the cache."""
    if cache_mode == "replay":
        return os.environ.get(s.api_key_env) if s.api_key_env else PLACEHOLDER_KEY
    key = PLACEHOLDER_KEY
    if s.api_key_env:
        key = os.environ.get(s.api_key_env, "")
        if not key:
            raise ConfigError(
                f"llm={s.name} needs an API key: set the environment variable {s.api_key_env} "
                f"(export {s.api_key_env}=...), or choose llm=local to run offline"
            )
    if s.api_base:
        try:
            answer = httpx.get(f"{s.api_base.rstrip('/')}/models", headers={"Authorization": f"Bearer {key}"}, timeout=10.0)
        except httpx.HTTPError as exc:
            raise ConfigError(
                f"LLM endpoint {s.api_base} does not answer ({type(exc).__name__}: {exc}); start the server or fix llm.api_base"
            ) from None
        if answer.status_code in (401, 403):
            where = f"${s.api_key_env}" if s.api_key_env else "the endpoint's key"
            raise ConfigError(f"LLM endpoint {s.api_base} refused the credentials (HTTP {answer.status_code}); check {where}")
        if answer.status_code >= 400:
            raise ConfigError(f"LLM endpoint {s.api_base}/models answered HTTP {answer.status_code}; check llm.api_base")
    return key


@contextmanager
def open_llm(cfg: DictConfig | dict, run_dir: Path | None, identity: dict[str, Any] | None = None) -> Iterator[LLMClient]:
    """The run's client. `identity` (experiment, env, method, seed) makes every request of this
    run a draw of its own: part of the cache key and of the per-request seed."""
    c = _plain(cfg)
    mode = c.get("cache", "readwrite")
    if mode not in MODES:
        raise ConfigError(f"llm.cache={mode!r}: choose one of {', '.join(MODES)}")
    settings = settings_from(c)
    count_tokens = None
    with ExitStack() as stack:
        server_cfg = c.get("server")
        if server_cfg and mode != "replay":
            from llmrl.llm.local_server import LocalModelServer
            from llmrl.llm.model_store import ModelFiles, ensure_model

            weights = ensure_model(ModelFiles(**server_cfg["weights"]))
            server = LocalModelServer(
                weights, model_alias=settings.model.split("/", 1)[-1], host=server_cfg.get("host", "127.0.0.1"),
                port=int(server_cfg.get("port") or 0), n_ctx=int(server_cfg.get("n_ctx", 8192)),
                n_threads=server_cfg.get("n_threads"), startup_timeout_s=float(server_cfg.get("startup_timeout_s", 180)),
                log_path=(Path(run_dir) / "llm_server.log") if run_dir else None, extra_args=server_cfg.get("extra_args"),
                slots=server_cfg.get("slots"), binary=server_cfg.get("binary"),
            )
            stack.enter_context(server)
            settings.api_base = server.api_base
            count_tokens = server.count_tokens
            if c.get("concurrency") is None:  # requests in flight = the server's slots
                settings.concurrency = server.slots
            if c.get("samples_per_request") is None:  # one prompt's replies decoded together, its prompt processed once
                settings.samples_per_request = server.slots
        key = preflight(settings, mode)
        cache = ResponseCache(Path(os.path.expandvars(str(c.get("cache_dir", "~/.cache/llmrl/llm")))), mode)
        transcript = Transcript(Path(run_dir) / TRANSCRIPT_FILE if run_dir else None)
        client = LLMClient(settings, cache, transcript, api_key=key, identity=identity, count_tokens=count_tokens)
        stack.callback(client.close)
        yield client
