"""What makes a run *this* run, so that two different configs never share a directory and a
directory is never continued with another config without saying so.

- `variant`: every command-line override except env/method/llm/seed (they are path parts
  already) and the keys in `run_identity.bookkeeping` and `run_identity.budget` (they change
  nothing a run computes, or only how long it goes on) becomes part of the run directory's name:
  a readable summary plus a short hash of the normalised overrides. A hyperparameter sweep gets
  one directory per value; the default command gets none.
- `config_diff`: the fully resolved config of the run directory against the one about to run,
  bookkeeping keys left out. Any difference is refused unless `resume_allow_changes` names it.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Iterable

import yaml
from omegaconf import OmegaConf

GROUP_KEYS = ("env", "method", "llm", "seed", "experiment_name", "experiment")  # exact keys: path parts or presets
READABLE_CHARS = 40


def _covered(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _normalise(value: str) -> Any:
    """`1e-3` and `0.001` are one value; so are `[1,2]` and `[1, 2]`."""
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def identity_overrides(overrides: Iterable[str], ignore: Iterable[str]) -> list[tuple[str, Any]]:
    """(key, value) of the overrides that make a run a variant, sorted."""
    ignore = ["hydra", *ignore]
    pairs = {}
    for item in overrides:
        key, sep, value = str(item).lstrip("+~").partition("=")
        if not sep or key in GROUP_KEYS or _covered(key, ignore):
            continue
        pairs[key] = _normalise(value)
    return sorted(pairs.items())


def variant(overrides: Iterable[str], ignore: Iterable[str]) -> str:
    """"" for a run with no identity-changing override, else "+<readable>-<hash6>"."""
    pairs = identity_overrides(overrides, ignore)
    if not pairs:
        return ""
    digest = hashlib.sha256(json.dumps(pairs, sort_keys=True, default=str).encode()).hexdigest()[:6]
    readable = ",".join(f"{k.rsplit('.', 1)[-1]}={json.dumps(v, default=str) if not isinstance(v, str) else v}" for k, v in pairs)
    readable = re.sub(r"[^A-Za-z0-9_.,=+-]", "_", readable)[:READABLE_CHARS]
    return f"+{readable}-{digest}"


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out  # an empty mapping has no leaves: {} and {lr: 0.1} differ in lr alone
    return {prefix: node}


def config_diff(old: dict[str, Any], new: dict[str, Any], ignore: Iterable[str]) -> list[tuple[str, Any, Any]]:
    """(key, old value, new value) for every leaf that differs, bookkeeping keys left out."""
    ignore = list(ignore)
    a, b = _flatten(old), _flatten(new)
    return [(k, a.get(k, "<absent>"), b.get(k, "<absent>")) for k in sorted(set(a) | set(b))
            if not _covered(k, ignore) and a.get(k, "<absent>") != b.get(k, "<absent>")]


def describe_diff(diff: list[tuple[str, Any, Any]], limit: int = 6) -> str:
    shown = "; ".join(f"{k}: {_short(o)} there, {_short(n)} here" for k, o, n in diff[:limit])
    return shown + (f"; and {len(diff) - limit} more" if len(diff) > limit else "")


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def register_resolvers() -> None:
    """`${llmrl.variant:${hydra:overrides.task},${run_identity}}`, used by `run_name`."""
    if not OmegaConf.has_resolver("llmrl.variant"):
        def _variant(overrides, identity) -> str:
            ignore = [*(identity.get("bookkeeping") or []), *(identity.get("budget") or [])] if identity else []
            return variant(list(overrides or []), ignore)

        OmegaConf.register_new_resolver("llmrl.variant", _variant)
