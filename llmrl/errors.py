"""Errors a user can fix: `run.py` prints them as one line and exits non-zero."""


class ConfigError(Exception):
    """A config value is wrong; the message says which key, why, and what to set instead."""
