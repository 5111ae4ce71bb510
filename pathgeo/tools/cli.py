"""`pathgeo`: one command for the tools, each also `python -m <its module>`.

    pathgeo doctor                 # can this node run the GPU jobs?
    pathgeo plan --configfile config/presets/imagenet.yaml
    pathgeo check-config my.yaml   # the workflow's whole check of a config
    pathgeo schema experiments     # what a section of the config takes
    pathgeo <command> --help       # the command's own options

The command's arguments go to its module's `main` unchanged. The modules are imported only when their command
runs, so `pathgeo --help` does not wait for torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    module: str
    help: str


COMMANDS = {
    "doctor": Command(
        "pathgeo.tools.doctor", "check this node for the GPU jobs: CUDA, driver, GPUs, Triton, NCCL, memory"
    ),
    "plan": Command(
        "pathgeo.tools.compute_plan", "the compute plan of a config: hours, GPU-hours and memory of every run"
    ),
    "check-config": Command(
        "pathgeo.planning.config_check",
        "check config files as the workflow does: syntax, schema, cross-key checks, 'did you mean' (FILE...)",
    ),
    "schema": Command("pathgeo.planning.schema", "what the config's keys take, one section at a time ([SECTION])"),
    "bench": Command("pathgeo.tools.bench", "benchmarks of the probe: overhead (CPU), device (the prepared GPU check)"),
    "precision-check": Command(
        "pathgeo.tools.precision_check", "throughput and replay drift of each precision on a device"
    ),
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="pathgeo",
        description="pathgeo's tools; each is also python -m <its module>.",
        epilog="pathgeo COMMAND --help shows the options of the command.",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        commands.add_parser(name, help=f"{command.help} (python -m {command.module})", add_help=False)
    return top


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        parser().print_help(sys.stderr)
        return 2
    if argv[0] not in COMMANDS:
        # --help lists the commands (exit 0); anything else is an error that names them (exit 2).
        parser().parse_args(argv[:1])
    command = COMMANDS[argv[0]]
    status = importlib.import_module(command.module).main(argv[1:])
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
