"""One client over litellm for every backend. It samples N completions of a prompt (or a
batch of prompts) concurrently under a bound (every request, whoever sends it, waits for one of
`llm.concurrency` slots), retries transient failures with exponential
backoff and jitter (honouring Retry-After), fails at once with a precise message on errors no
retry can fix, accounts tokens and cost, enforces hard caps, serves and fills the response
cache, and writes every call to the transcript.

Retries are done here rather than by litellm's `num_retries`: litellm's per-call retries do
not honour a server's Retry-After header, and the caps and the transcript need to see every
attempt. litellm still does the provider-specific work: request format, exception mapping,
token usage and the cost map.

Every request is one *draw*: the run's identity (experiment, env, method, seed) plus the
request's tag and sample index. The draw is part of the cache key, so seeds are independent
samples and never replay each other's answers, and a seed derived from it is sent to backends
that accept one, so uncached runs are as reproducible as the backend allows."""
from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from llmrl.llm.cache import ResponseCache, request_key
from llmrl.llm.errors import LLMBudgetExhausted, LLMReplayMiss, LLMRequestError
from llmrl.llm.transcript import Transcript

log = logging.getLogger(__name__)
Messages = list[dict[str, Any]]


@dataclass
class Completion:
    """One reply. `problem` is set (and `text` may be empty) when the reply came back but is
    not usable as is: empty content, or cut off at max_tokens."""

    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_s: float
    cached: bool
    attempts: int
    sample_index: int
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass
class Usage:
    """Totals of the run. Cached replies count with the tokens and cost they had when first
    made, so a replayed run reports (and stops at caps) exactly as the original did;
    `http_calls` and `spent_usd` are what this process actually sent and paid."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cache_hits: int = 0
    http_calls: int = 0
    spent_usd: float = 0.0
    failures: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def curve_columns(self) -> dict[str, Any]:
        return {"llm_calls": self.calls, "llm_tokens": self.tokens, "llm_cost_usd": round(self.cost_usd, 6)}


@dataclass
class LLMSettings:
    """The knobs of conf/llm/*.yaml that the client itself reads."""

    name: str
    model: str
    api_base: str | None = None
    api_key_env: str | None = None
    temperature: float = 1.0
    max_tokens: int = 4096
    timeout_s: float = 300.0
    max_retries: int = 6
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    concurrency: int = 10
    budget_usd: float | None = None
    max_calls: int | None = None
    cost_per_input_token: float | None = None
    cost_per_output_token: float | None = None
    send_seed: bool = True
    # Samples of one prompt sent as one request (OpenAI's `n`): > 1 only for servers that process the
    # prompt once and decode the replies together (llm=local sets it to llama-server's slots).
    samples_per_request: int = 1
    # A system message put before every request's messages (e.g. "reply with code only"); None = none.
    # The methods' own prompts stay as published; this is a setting of the model's side, recorded in every key.
    system_prompt: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _litellm():
    import os

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch the cost map at import
    import litellm

    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)  # one INFO line per request otherwise
    litellm.suppress_debug_info = True
    litellm.drop_params = True
    return litellm


def request_seed(draw: dict[str, Any]) -> int:
    """A 31-bit seed for the backend, derived from the draw (stable across runs and machines)."""
    digest = hashlib.sha256(json.dumps(draw, sort_keys=True, separators=(",", ":")).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class LLMClient:
    def __init__(self, settings: LLMSettings, cache: ResponseCache, transcript: Transcript,
                 api_key: str | None = None, sleep: Callable[[float], None] = time.sleep,
                 identity: dict[str, Any] | None = None, count_tokens: Callable[[str], int] | None = None) -> None:
        self.settings = settings
        self._count_tokens = count_tokens  # replies after the first of an n-request carry no usage of their own
        self.listeners: list[Callable[[Completion], None]] = []  # told of every reply (a run's status line)
        self.identity = dict(identity or {})
        self.cache = cache
        self.transcript = transcript
        self.usage = Usage()
        self._api_key = api_key
        self._sleep = sleep
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(1, int(settings.concurrency)), thread_name_prefix="llm")
        self._slots = threading.BoundedSemaphore(max(1, int(settings.concurrency)))  # HTTP requests in flight
        self._litellm = _litellm()
        self._warned_price = False

    # ---- public API ------------------------------------------------------------------------
    def sample(self, messages: Messages, n: int, tag: str = "") -> list[Completion]:
        """N independent completions of one prompt, concurrently, returned in sample order. With
        `samples_per_request` > 1 the ones not in the cache go out in requests of that many replies."""
        per = max(1, int(self.settings.samples_per_request))
        if per == 1 or n == 1:  # complete() adds the system message
            return list(self._pool.map(lambda i: self.complete(messages, sample_index=i, tag=tag), range(n)))
        messages = self._with_system(messages)
        out: dict[int, Completion] = {}
        todo = []
        for i in range(n):
            ident = self._identify(messages, i, tag)
            cached = self._from_cache(ident)
            if cached is not None:
                out[i] = cached
            else:
                todo.append(ident)
        groups = [todo[k:k + per] for k in range(0, len(todo), per)]
        for group in self._pool.map(lambda g: self._complete_group(messages, g), groups):
            out.update({c.sample_index: c for c in group})
        return [out[i] for i in range(n)]

    def complete_many(self, prompts: list[Messages], tag: str = "", indices: list[int] | None = None) -> list[Completion]:
        """One completion for each of several prompts, concurrently, returned in order. Prompt i
        is sample `indices[i]` (default i) of `tag`, so identical prompts are distinct draws."""
        indices = list(range(len(prompts))) if indices is None else list(indices)
        return list(self._pool.map(lambda i: self.complete(prompts[i], sample_index=indices[i], tag=tag), range(len(prompts))))

    def draw(self, tag: str, sample_index: int) -> dict[str, Any]:
        """What makes a request a distinct sample: the run's identity, the tag, the index."""
        return {**self.identity, "tag": tag, "sample_index": int(sample_index)}

    def _identify(self, messages: Messages, sample_index: int, tag: str) -> tuple[dict, dict, str, dict]:
        """(draw, sampling params, cache key, transcript record) of one sample."""
        draw = self.draw(tag, sample_index)
        params = self._sampling_params(draw)
        key = request_key(self.settings.model, messages, params, draw)
        record = {"tag": tag, "model": self.settings.model, "sample_index": sample_index, "draw": draw, "messages": messages,
                  "params": params, "cache_key": key, "time": time.time()}
        return draw, params, key, record

    def _from_cache(self, ident: tuple[dict, dict, str, dict]) -> Completion | None:
        """The cached completion of this draw (accounted and in the transcript), or None."""
        _, _, key, record = ident
        cached = self.cache.get(key)
        if cached is None:
            return None
        self._reserve()  # caps count cached calls too, so a replay stops where the original stopped
        completion = Completion(**{**cached, "cached": True, "latency_s": 0.0, "attempts": 0,
                                   "sample_index": record["sample_index"]})
        self._account(completion)
        self.transcript.append({**record, **self._response_record(completion)})
        self._notify(completion)
        return completion

    def _notify(self, c: Completion) -> None:
        for listener in self.listeners:
            try:
                listener(c)
            except Exception as exc:  # a display must never lose a reply
                log.debug("reply listener failed: %s", exc)

    def _complete_group(self, messages: Messages, ids: list[tuple[dict, dict, str, dict]]) -> list[Completion]:
        """Uncached samples of one prompt in one request with n = len(ids). The server gives
        reply j the seed of the first draw + j (llama-server's rule for n > 1); each reply is
        cached under its own draw, so a later run with another grouping finds it."""
        if len(ids) == 1:
            return [self._fresh(messages, ids[0])]
        if self.cache.mode == "replay":
            self._replay_miss(messages, ids[0])
        reserved = 0
        try:
            for _ in ids:
                self._reserve()
                reserved += 1
            params = {**ids[0][1], "n": len(ids)}
            response, attempts, latency = self._post(messages, params, ids[0][3])
        except Exception:
            with self._lock:
                self.usage.calls -= reserved
                self.usage.failures += 1 if reserved == len(ids) else 0
            raise
        got = min(len(response.choices), len(ids))
        out = []
        for j, (draw, own_params, key, record) in enumerate(ids[:got]):
            c = self._to_completion(response, record["sample_index"], attempts, latency, choice=j)
            used = {**own_params, "seed": params["seed"] + j} if "seed" in params else dict(own_params)
            used["n_in_request"] = len(ids)
            self._store(c, key, messages, used, draw, record)
            out.append(c)
        if got < len(ids):  # a server that ignores `n`: the rest one by one
            log.warning("%s answered %d of n=%d replies; asking for the rest one at a time (set llm.samples_per_request=1)",
                        self.settings.model, got, len(ids))
            with self._lock:
                self.usage.calls -= len(ids) - got
            out += [self._fresh(messages, ident) for ident in ids[got:]]
        return out

    def complete(self, messages: Messages, sample_index: int = 0, tag: str = "") -> Completion:
        messages = self._with_system(messages)
        ident = self._identify(messages, sample_index, tag)
        cached = self._from_cache(ident)
        return cached if cached is not None else self._fresh(messages, ident)

    def _fresh(self, messages: Messages, ident: tuple[dict, dict, str, dict]) -> Completion:
        """One uncached sample: requested, accounted, cached, transcribed (a miss in replay mode)."""
        draw, params, key, record = ident
        if self.cache.mode == "replay":
            self._replay_miss(messages, ident)
        self._reserve()
        try:
            completion = self._request(messages, params, record["sample_index"], record)
        except Exception:
            with self._lock:
                self.usage.calls -= 1  # the reserved call never completed
                self.usage.failures += 1
            raise
        self._store(completion, key, messages, params, draw, record)
        return completion

    def _with_system(self, messages: Messages) -> Messages:
        """The method's messages behind `llm.system_prompt` (added once per request, by its one entry point)."""
        system = self.settings.system_prompt
        return [{"role": "system", "content": system}, *messages] if system else messages

    def _replay_miss(self, messages: Messages, ident: tuple[dict, dict, str, dict]) -> None:
        draw, _, key, record = ident
        last = str(messages[-1].get("content", ""))[:200] if messages else ""
        self.transcript.append({**record, "error": "replay miss"})
        raise LLMReplayMiss(
            f"llm.cache=replay has no cached response for model={self.settings.model}, draw={draw}, "
            f"key={key[:16]}..., last message: {last!r}; run this exact command (same seed, env, method and "
            f"experiment_name) once with llm.cache=readwrite to record it"
        )

    def _store(self, c: Completion, key: str, messages: Messages, params: dict, draw: dict, record: dict) -> None:
        """Account a fresh completion, cache it under its draw's key (when complete), transcribe it."""
        self._account(c)
        if c.finish_reason is not None:
            stored = {k: v for k, v in asdict(c).items() if k not in ("cached", "latency_s", "attempts", "sample_index")}
            self.cache.put(key, {"model": self.settings.model, "messages": messages, "params": params, "draw": draw}, stored)
        self.transcript.append({**record, "params": params, **self._response_record(c)})
        self._notify(c)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- internals -------------------------------------------------------------------------
    def _sampling_params(self, draw: dict[str, Any]) -> dict[str, Any]:
        params = {"temperature": self.settings.temperature, "max_tokens": self.settings.max_tokens}
        if self.settings.send_seed:
            params["seed"] = request_seed(draw)
        return {**params, **(self.settings.extra or {})}

    def _reserve(self) -> None:
        """Count the call before it is sent, so concurrent workers cannot overshoot the caps."""
        s = self.settings
        with self._lock:
            if s.max_calls is not None and self.usage.calls >= s.max_calls:
                raise LLMBudgetExhausted(f"llm.max_calls={s.max_calls} reached; raise it and resume with resume=true to go on")
            if s.budget_usd is not None and self.usage.cost_usd >= s.budget_usd:
                raise LLMBudgetExhausted(
                    f"llm.budget_usd={s.budget_usd} reached (spent {self.usage.cost_usd:.4f} USD); "
                    f"raise it and resume with resume=true to go on"
                )
            self.usage.calls += 1

    def _account(self, c: Completion) -> None:
        with self._lock:
            self.usage.prompt_tokens += c.prompt_tokens
            self.usage.completion_tokens += c.completion_tokens
            self.usage.cost_usd += c.cost_usd
            if c.cached:
                self.usage.cache_hits += 1
            else:
                self.usage.spent_usd += c.cost_usd

    def _request(self, messages: Messages, params: dict[str, Any], sample_index: int, record: dict) -> Completion:
        response, attempts, latency = self._post(messages, params, record)
        return self._to_completion(response, sample_index, attempts, latency)

    def _post(self, messages: Messages, params: dict[str, Any], record: dict) -> tuple[Any, int, float]:
        """(response, attempts, latency) with retries of transient failures."""
        s = self.settings
        lt = self._litellm
        start = time.perf_counter()
        last_error = ""
        for attempt in range(1, s.max_retries + 2):
            with self._lock:
                self.usage.http_calls += 1
            try:
                with self._slots:  # repairs, reflections and samples share the one bound
                    response = lt.completion(
                        model=s.model, messages=messages, api_base=s.api_base, api_key=self._api_key, timeout=s.timeout_s,
                        num_retries=0, max_retries=0, **params,
                    )
                return response, attempt, time.perf_counter() - start
            except Exception as exc:  # classified below; anything unknown is treated as transient
                fatal = self._fatal_message(exc)
                if fatal is not None:
                    self.transcript.append({**record, "error": fatal, "attempts": attempt})
                    raise LLMRequestError(fatal) from None
                last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                if attempt > s.max_retries:
                    break
                wait = self._backoff(exc, attempt)
                log.warning("LLM call failed (%s), attempt %d/%d; retrying in %.1fs", last_error, attempt, s.max_retries + 1, wait)
                self.transcript.append({**record, "error": last_error, "attempts": attempt, "retry_in_s": round(wait, 3)})
                self._sleep(wait)
        message = (
            f"LLM {s.model} failed after {s.max_retries + 1} attempts; last error: {last_error}. The endpoint may be "
            f"down or overloaded: raise llm.max_retries or llm.timeout_s, then continue with resume=true"
        )
        self.transcript.append({**record, "error": message, "attempts": s.max_retries + 1})
        raise LLMRequestError(message)

    def _backoff(self, exc: Exception, attempt: int) -> float:
        """Retry-After when the server sends one, else exponential backoff with full jitter."""
        headers = getattr(exc, "litellm_response_headers", None) or getattr(getattr(exc, "response", None), "headers", None)
        if headers is not None:
            value = headers.get("retry-after") or headers.get("Retry-After")
            if value is not None:
                try:
                    return min(float(value), self.settings.backoff_max_s)
                except ValueError:
                    pass
        ceiling = min(self.settings.backoff_max_s, self.settings.backoff_initial_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _fatal_message(self, exc: Exception) -> str | None:
        """A message for errors no retry can fix; None for transient ones."""
        e = self._litellm.exceptions
        s = self.settings
        text = str(exc).splitlines()[0][:400] if str(exc) else type(exc).__name__
        if isinstance(exc, e.ContextWindowExceededError):
            return (f"the prompt does not fit model {s.model}'s context window ({text}); shorten the prompt "
                    f"(e.g. less history) or choose a model with a longer context")
        if isinstance(exc, (e.AuthenticationError, e.PermissionDeniedError)):
            where = f"the key in ${s.api_key_env}" if s.api_key_env else "the API key"
            return f"LLM {s.model} refused the credentials ({text}); check {where}"
        if isinstance(exc, e.NotFoundError):
            return f"LLM {s.model} was not found at the endpoint ({text}); check llm.model and llm.api_base"
        if isinstance(exc, (e.BadRequestError, e.UnprocessableEntityError, e.ContentPolicyViolationError)):
            return (f"LLM {s.model} rejected the request ({text}); check llm.model and the sampling parameters "
                    f"(llm.temperature, llm.max_tokens, llm.extra)")
        return None

    def _to_completion(self, response: Any, sample_index: int, attempts: int, latency: float, choice: int = 0) -> Completion:
        picked = response.choices[choice]
        text = picked.message.content or ""
        finish = picked.finish_reason
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        if len(response.choices) > 1:
            # an n-request: the prompt was processed once (counted on the first reply); the usage
            # llama-server reports is the first reply's, so every reply's own tokens are counted here
            prompt_tokens = prompt_tokens if choice == 0 else 0
            completion_tokens = self._tokens_of(text)
        problem = None
        if not text.strip():
            problem = "empty content"
        elif finish == "length":
            problem = f"truncated at llm.max_tokens={self.settings.max_tokens} (finish_reason=length); raise llm.max_tokens"
        return Completion(text=text, finish_reason=finish, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                          cost_usd=self._cost(response, prompt_tokens, completion_tokens), latency_s=round(latency, 4),
                          cached=False, attempts=attempts, sample_index=sample_index, problem=problem)

    def _tokens_of(self, text: str) -> int:
        if self._count_tokens is not None:
            try:
                return int(self._count_tokens(text))
            except Exception as exc:  # accounting must not lose a reply
                log.warning("token count failed (%s); using litellm's estimate", exc)
        return int(self._litellm.token_counter(model=self.settings.model, text=text))

    def _cost(self, response: Any, prompt_tokens: int, completion_tokens: int) -> float:
        s = self.settings
        if s.cost_per_input_token is not None or s.cost_per_output_token is not None:
            return prompt_tokens * (s.cost_per_input_token or 0.0) + completion_tokens * (s.cost_per_output_token or 0.0)
        try:
            if len(response.choices) > 1:  # one reply of an n-request: its own tokens, not the whole response's
                return float(sum(self._litellm.cost_per_token(model=s.model, prompt_tokens=prompt_tokens,
                                                              completion_tokens=completion_tokens)))
            return float(self._litellm.completion_cost(completion_response=response))
        except Exception:
            if not self._warned_price:
                log.warning("no price known for %s: its cost is counted as 0 (set llm.cost_per_input_token and "
                            "llm.cost_per_output_token to account it)", s.model)
                self._warned_price = True
            return 0.0

    @staticmethod
    def _response_record(c: Completion) -> dict[str, Any]:
        return {"response": c.text, "finish_reason": c.finish_reason, "prompt_tokens": c.prompt_tokens,
                "completion_tokens": c.completion_tokens, "cost_usd": c.cost_usd, "latency_s": c.latency_s,
                "cache_hit": c.cached, "attempts": c.attempts, "error": c.problem}
