"""Getting code out of an LLM reply: the first fenced Python block."""
from __future__ import annotations

import re

# ```python, ```py or ```Python3 ... ``` ; a bare ``` block is accepted when no tagged one exists.
_TAGGED = re.compile(r"```[ \t]*(?:python3?|py)[ \t]*\n(.*?)```", re.IGNORECASE | re.DOTALL)
_BARE = re.compile(r"```[ \t]*\n(.*?)```", re.DOTALL)


def first_python_block(reply: str) -> str | None:
    """The code of the first ```python block (or of the first untagged block), or None."""
    for pattern in (_TAGGED, _BARE):
        match = pattern.search(reply or "")
        if match and match.group(1).strip():
            return match.group(1).rstrip() + "\n"
    return None


def missing_block_reason(reply: str) -> str:
    if not (reply or "").strip():
        return "the reply was empty"
    if "```" in reply:
        return "the reply's code fence was not closed or held no code (it may have been cut off at max_tokens)"
    return "the reply held no fenced ```python code block"
