"""The live line of a run whose time goes to an LLM (PromptPO's rounds, ULTRA's identifications).

A steps bar with an ETA is wrong for these runs: minutes pass with no env step while the model
writes. This line says where the run is instead: the phase (round r/R, identification k), replies
received n/N, repairs, the model's tokens/s, LLM calls and cost so far, env steps, the latest
return. On a terminal it is redrawn in place (tqdm) every second; anywhere else (CI, SLURM logs,
a file) each event is one plain line, so a log reads as a history, not a smear of redraws."""
from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

from tqdm import tqdm


class StatusLine:
    def __init__(self, label: str, enabled: bool = True, stream: TextIO | None = None, tty: bool | None = None,
                 refresh_s: float = 1.0) -> None:
        self.label = label
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
        self._lock = threading.RLock()
        self._phase, self._expect, self._replies, self._repairs = "starting", None, 0, 0
        self._phase_t0 = time.monotonic()
        self._phase_tokens, self._last_reply_t = 0, None
        self._calls, self._cost, self._steps, self._latest = 0, 0.0, 0, None
        self._bar = None
        self._stop = threading.Event()
        if enabled and self.tty:
            self._bar = tqdm(total=None, bar_format="{desc}", file=self.stream, dynamic_ncols=True, leave=True)
            threading.Thread(target=self._tick, args=(refresh_s,), daemon=True, name="status-line").start()

    # ---- events ------------------------------------------------------------------------------
    def phase(self, name: str, expect_replies: int | None = None) -> None:
        """A new stage of the method (e.g. "round 2/5" expecting 4 replies)."""
        with self._lock:
            self._phase, self._expect, self._replies, self._repairs = name, expect_replies, 0, 0
            self._phase_t0, self._phase_tokens, self._last_reply_t = time.monotonic(), 0, None
            self._emit(f"{name} started" + (f", waiting for {expect_replies} replies" if expect_replies else ""))

    def reply(self, completion: Any) -> None:
        """One LLM reply arrived (the client calls this for every reply, cached or fresh)."""
        with self._lock:
            if not getattr(completion, "cached", False):
                self._phase_tokens += int(getattr(completion, "completion_tokens", 0) or 0)
                self._last_reply_t = time.monotonic()
            how = "cached" if getattr(completion, "cached", False) else f"{getattr(completion, 'completion_tokens', 0)} tokens"
            if self._expect and self._replies >= self._expect:  # the phase's replies are in: this one answers a repair
                self._emit(f"reply to a repair ({how})")
                return
            self._replies += 1
            expect = f"/{self._expect}" if self._expect else ""
            self._emit(f"reply {self._replies}{expect} ({how})")

    def repair(self, what: str = "") -> None:
        with self._lock:
            self._repairs += 1
            self._emit(f"repair {self._repairs}" + (f": {what}" if what else ""))

    def usage(self, calls: int, cost_usd: float) -> None:
        with self._lock:
            self._calls, self._cost = calls, cost_usd

    def steps(self, env_steps: int, latest: dict[str, Any] | None = None) -> None:
        with self._lock:
            self._steps = env_steps
            if latest is not None:
                self._latest = latest.get("return_mean")
                self._emit(f"curve point at {env_steps:,} env steps: return {self._latest:.4g}"
                           if self._latest is not None else f"curve point at {env_steps:,} env steps")

    def note(self, text: str) -> None:
        with self._lock:
            self._emit(text)

    def close(self) -> None:
        self._stop.set()
        if self._bar is not None:
            with self._lock:
                self._bar.set_description_str(self.render(), refresh=True)
                self._bar.close()
                self._bar = None

    # ---- drawing -------------------------------------------------------------------------------
    def tokens_per_s(self) -> float | None:
        if self._last_reply_t is None or self._phase_tokens == 0:
            return None
        return self._phase_tokens / max(self._last_reply_t - self._phase_t0, 1e-6)

    def render(self, label: bool = True) -> str:
        parts = ([self.label] if label else []) + [self._phase]
        if self._expect:
            parts.append(f"replies {self._replies}/{self._expect}")
        parts.append(f"repairs {self._repairs}")
        rate = self.tokens_per_s()
        parts.append(f"{rate:.1f} tok/s" if rate is not None else "- tok/s")
        parts.append(f"{self._calls} LLM calls ${self._cost:.4f}")
        parts.append(f"{self._steps:,} env steps")
        if self._latest is not None:
            parts.append(f"return {self._latest:.4g}")
        parts.append(f"{time.monotonic() - self._phase_t0:.0f}s in phase")
        return " | ".join(parts)

    def _emit(self, event: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_description_str(self.render(), refresh=True)
        else:
            print(f"[{self.label}] {event} | {self.render(label=False)}", file=self.stream, flush=True)

    def _tick(self, every: float) -> None:
        while not self._stop.wait(every):
            with self._lock:
                if self._bar is not None:
                    self._bar.set_description_str(self.render(), refresh=True)
