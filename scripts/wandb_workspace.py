"""Save a W&B workspace view for one experiment: runs filtered to the experiment, grouped by
env and method, every curve panel against env_steps. Needs a W&B account, network access and
`pip install wandb-workspaces` (W&B's public-preview Workspace API); it cannot run offline, so
it is kept thin and outside the test suite. Runs logged with logger=wandb already carry
everything it uses (config experiment_name, env.name, method.name; metric env_steps).

    python scripts/wandb_workspace.py --entity ENTITY --project llmrl --experiment paper_promptpo
"""
from __future__ import annotations

import argparse
import sys

PANELS = ["return_mean", "success_rate", "train_return", "llm_calls", "llm_tokens", "llm_cost_usd", "wall_s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entity", required=True)
    parser.add_argument("--project", default="llmrl")
    parser.add_argument("--experiment", required=True, help="the runs' experiment_name")
    args = parser.parse_args()
    try:
        import wandb_workspaces.reports.v2 as wr
        import wandb_workspaces.workspaces as ws
    except ImportError:
        print("error: this script needs W&B's workspace library: pip install wandb-workspaces", file=sys.stderr)
        return 2
    workspace = ws.Workspace(
        name=f"{args.experiment}: sample efficiency",
        entity=args.entity,
        project=args.project,
        sections=[ws.Section(name=f"{metric} vs env_steps", is_open=True,
                             panels=[wr.LinePlot(x="env_steps", y=[metric])]) for metric in PANELS],
        runset_settings=ws.RunsetSettings(
            filters=[ws.Config("experiment_name") == args.experiment],
            groupby=[ws.Config("env.name"), ws.Config("method.name")],
        ),
    )
    workspace.save()
    print(f"saved workspace view: {workspace.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
