"""Errors a user can fix: `run.py` prints them as one line and exits non-zero."""


class ConfigError(Exception):
    """A config value is wrong; the message says which key, why, and what to set instead."""


class Incompatible(ConfigError):
    """The method cannot run on this env at all (e.g. SAC on discrete actions). A single run
    reports it as an error; in a sweep over methods x envs the pair is skipped and the sweep
    record says why, so one preset can list every method and every env."""


class GuideError(ConfigError):
    """A guide policy handed to RL (jump-start, behaviour cloning, residual) cannot be used: it
    fails, or it broke the sandbox's protocol. The message says what it did, where, and what to do."""
