"""The single entry point: `python run.py method=ppo env=cartpole seed=0` (see README.md)."""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from llmrl.identity import register_resolvers

register_resolvers()  # run_name's ${llmrl.variant:...}, needed while Hydra composes the config


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from llmrl.errors import ConfigError, Incompatible
    from llmrl.runner import run

    try:
        run(cfg)
    except ConfigError as exc:
        hc = HydraConfig.get()
        if hc.mode == RunMode.MULTIRUN:
            if isinstance(exc, Incompatible):  # a method x env pair that cannot exist: skipped, recorded
                from pathlib import Path

                from llmrl.sweeps import record

                record.update(Path(hc.sweep.dir), Path(hc.runtime.output_dir), status="skipped", error=str(exc))
                return
            raise  # the launcher records it against this job; the other jobs go on
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    from llmrl import cli

    if any(a in ("--help", "-h") for a in sys.argv[1:]):
        print(cli.help_text())
        sys.exit(0)
    problem = cli.check(sys.argv[1:])  # one line and exit code 2 for what Hydra would refuse with a page
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    main()
