"""Prompt rendering. The texts live in promptpo/prompts/*.j2; this module only fills them."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).parent / "prompts"
_env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                          trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)


def render(name: str, **values: Any) -> str:
    return _env.get_template(name).render(**values).strip() + "\n"


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def fmt_numbers(values: list[float] | None) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in (values or [])) + "]"
