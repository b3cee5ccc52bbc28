"""What `python run.py` does before Hydra takes over: `--help` that lists what a user can pick,
and a check of the overrides that turns Hydra's composition errors (an unknown env, method or
preset, a misspelt key, an override it cannot parse) into one line naming the valid choices,
exit code 2, before any work. In a multirun every value of a swept group is checked."""
from __future__ import annotations

import difflib
import re
from itertools import islice
from pathlib import Path

from omegaconf import OmegaConf

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
# Groups that hold data the code reads (hyperparameter tables, reference scores), not choices.
NOT_SELECTABLE = {"hparams", "analysis"}
HYDRA_FLAGS_WITH_VALUE = {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun",
                          "--package", "-p", "--info", "-i"}
MAX_COMPOSITIONS = 60


def overrides_of(argv: list[str]) -> list[str] | None:
    """The overrides in a command line, or None if Hydra itself should answer (--cfg, --info...)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--multirun", "-m", "--resolve"):
            continue
        if arg.startswith("-"):
            if arg in ("--cfg", "-c", "--help", "-h", "--hydra-help", "--version", "--shell-completion", "-sc"):
                return None
            skip = arg in HYDRA_FLAGS_WITH_VALUE
            continue
        out.append(arg)
    return out


def groups() -> dict[str, list[str]]:
    """Selectable config groups and their options (files starting with _ are shared parts)."""
    found: dict[str, list[str]] = {}
    for folder in sorted(p for p in CONF_DIR.rglob("*") if p.is_dir()):
        group = folder.relative_to(CONF_DIR).as_posix()
        if group.split("/")[0] in NOT_SELECTABLE:
            continue
        options = sorted(p.stem for p in folder.glob("*.yaml") if not p.stem.startswith("_"))
        if options:
            found[group] = options
    return found


def help_text() -> str:
    lines = ["python run.py [GROUP=OPTION ...] [KEY=VALUE ...] [-m for a sweep: KEY=a,b,c]", "",
             "Config groups (pick one option each; defaults in conf/config.yaml):"]
    for group, options in groups().items():
        lines.append(f"  {group}: {', '.join(options)}")
    lines += ["", "Every key can be set as KEY=VALUE (a new key as +KEY=VALUE), e.g. method.total_steps=20000,",
              "seed=3, env.eval_episodes=5, +method.hparams.learning_rate=0.001, llm.temperature=0.7.",
              "python run.py --cfg job [overrides]   the fully resolved config of a run, with every key",
              "python run.py --hydra-help           Hydra's own flags", "",
              "README.md explains the methods, envs, outputs and sweeps."]
    return "\n".join(lines)


def check(argv: list[str]) -> str | None:
    """None if every run the command line asks for composes, else one line saying what to fix."""
    overrides = overrides_of(argv)
    if overrides is None:
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as exc:
        return f"cannot read the overrides {' '.join(overrides)}: {str(exc).splitlines()[0]} (see --help)"
    choices = []
    for text, o in zip(overrides, parsed):
        if o.is_sweep_override():
            values = list(islice(o.sweep_string_iterator(), MAX_COMPOSITIONS)) if not _is_interval(o) else []
            prefix = text[: len(text) - len(text.lstrip("+~"))]
            choices.append([f"{prefix}{o.get_key_element()}={v}" for v in values] or [None])
        else:
            choices.append([text])
    # the first value of every sweep, then each other value of each sweep with the first of the rest
    first = [c[0] for c in choices]
    runs = [[o for o in first if o is not None]]
    for i, c in enumerate(choices):
        runs += [[o for o in (first[:i] + [alt] + first[i + 1:]) if o is not None] for alt in c[1:]]
    for run in runs[:MAX_COMPOSITIONS]:
        problem = _compose_problem(run)
        if problem:
            return problem
    return None


def _is_interval(o) -> bool:
    return type(o.value()).__name__ == "IntervalSweep"


def _compose_problem(overrides: list[str]) -> str | None:
    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException, MissingConfigException

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            compose(config_name="config", overrides=overrides, return_hydra_config=True)
    except MissingConfigException as exc:
        return _missing_option(str(exc))
    except ConfigCompositionException as exc:
        return _bad_key(str(exc), overrides)
    except Exception as exc:  # noqa: BLE001 - anything else Hydra refuses, in one line
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


def _missing_option(message: str) -> str:
    found = re.search(r"Could not find '([^']+)'", message)
    if not found:
        return message.splitlines()[0]
    group, _, name = found.group(1).rpartition("/")
    options = groups().get(group) or re.findall(r"^\t(\S+)$", message, re.MULTILINE)
    options = [o for o in options if not o.startswith("_")]
    close = difflib.get_close_matches(name, options, n=1)
    hint = f" (did you mean {group}={close[0]}?)" if close else ""
    return f"{group}={name}: there is no such {group}{hint}; choose one of: {', '.join(options)}"


def _bad_key(message: str, overrides: list[str]) -> str:
    found = re.search(r"Could not override '([^']+)'", message)
    if not found:
        return message.splitlines()[0]
    key = found.group(1)
    parent, _, leaf = key.rpartition(".")
    rest = [o for o in overrides if not o.lstrip("+~").startswith(key + "=")]
    keys: list[str] = []
    parent_note = ""
    try:
        from hydra import compose, initialize_config_dir

        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=rest)
        node = OmegaConf.select(cfg, parent) if parent else cfg
        keys = sorted(str(k) for k in node.keys() if not str(k).startswith("_")) if hasattr(node, "keys") else []
        if parent in ("method", "env", "llm") and node is not None and node.get("name"):
            parent_note = f" (the {parent} here is {node.get('name')}; pick another with {parent}=...)"
    except Exception:  # noqa: BLE001 - the hint is a courtesy
        pass
    close = difflib.get_close_matches(leaf, keys, n=1)
    hint = f" (did you mean {parent + '.' if parent else ''}{close[0]}?)" if close else ""
    where = f"under {parent}" if parent else "at the top level"
    valid = f"; keys {where}: {', '.join(keys)}" if keys else ""
    value = next((o.split("=", 1)[1] for o in overrides if o.lstrip("+~").startswith(key + "=")), "...")
    return f"{key}: no such key {where}{parent_note}{hint}{valid}; to add a new key write +{key}={value}"
