"""The compute plan of a config before anything is submitted: for every run, the hours of its reference
training and of its replays, the GPU-hours they add up to, and the memory its jobs ask for.

    python -m pathgeo.tools.compute_plan --configfile config/presets/imagenet.yaml
    python -m pathgeo.tools.compute_plan --configfile config/presets/cifar10.yaml --device cpu --threads 16

No Snakemake is needed. The throughput behind the hours is measured where pathgeo.planning.sizing.MEASURED has the
run's model, precision and device, and otherwise assumed; each row says which, and the assumptions are printed.
"""

from __future__ import annotations

import argparse
import sys

from pathgeo.planning import sizing
from pathgeo.planning.config import correlation_settings, max_job_minutes
from pathgeo.planning.config_check import ConfigCheckError, check_config
from pathgeo.planning.config_errors import ConfigError


def plan_table(
    config: dict, device: str, threads: int, data_root: str | None = None, limit: int | None = None
) -> tuple[list[list[str]], float]:
    """The rows of the printed plan (a header first) and the total device-hours; `limit` is the site's time limit of
    one job in minutes (the reference training of a longer run is a chain of jobs)."""
    plan = sizing.sized_plan(config, limit, device, threads, data_root)
    correlations = correlation_settings(config)
    header = [
        "run",
        "precision",
        "devices",
        "epochs",
        "reference h",
        "replay h",
        f"{device} hours",
        "jobs",
        "device MB (rank 0)",
        "host MB (replay job)",
        "throughput",
    ]
    rows, total = [header], 0.0
    for planned in sizing.compute_plan(plan, device, threads, data_root, limit):
        spec = planned.spec
        references = len(plan.references(planned.run_id))
        vectors = sizing.probe_copies(correlations, references)
        total += planned.device_hours
        rows.append(
            [
                planned.run_id,
                spec.precision,
                str(spec.devices),
                str(spec.epochs),
                f"{planned.reference_hours:.2f}",
                f"{planned.replay_hours:.2f}",
                f"{planned.device_hours:.1f}",
                f"{planned.reference_jobs}+{planned.replay_jobs}",
                f"{sizing.model_state_mb(spec, vectors):.0f}",
                str(sizing.host_memory_mb(spec, device, 2 * spec.devices + references, vectors)),
                planned.source.split(":")[0],
            ]
        )
    return rows, total


def assumptions(device: str) -> list[str]:
    lines = [
        "Hours are estimates, not measurements. Samples per epoch: the config's, else the published dataset's size.",
        "FLOPs per training sample: 3 x the forward pass counted on the meta device (torch.utils.flop_counter).",
        (
            f"Replays: {sizing.ASSUMED_PROBE_SLOWDOWN:g} x a plain epoch (the probe; not measured on a GPU). "
            f"Evaluation and checkpoints: +{sizing.ASSUMED_EPOCH_OVERHEAD:.0%}."
        ),
        "device MB: weights, gradients, optimizer state, DDP buckets and the probe's vectors, without activations.",
        (
            "jobs: reference training + replay segments; reference training longer than max_job_minutes is a chain of "
            "jobs, each resuming from the checkpoint of the one before it."
        ),
    ]
    if device == "cpu":
        lines.append(f"Assumed: {sizing.ASSUMED_CPU_THREAD_FLOPS / 1e9:g} GFLOP/s per CPU thread.")
    else:
        peaks = ", ".join(f"{k} {v / 1e12:g}" for k, v in sizing.A100_PEAK_FLOPS.items())
        lines.append(
            f"Assumed: {sizing.ASSUMED_A100_UTILIZATION:.0%} of the A100's peak TFLOP/s ({peaks}); N GPUs scale at "
            f"{sizing.ASSUMED_SCALING_EFFICIENCY:.0%}."
        )
    measured = sorted(sizing.MEASURED)
    lines.append(
        f"Measured throughputs in pathgeo/planning/sizing.py MEASURED: {measured if measured else 'none yet'}."
    )
    return lines


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row: list[str]) -> str:
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))

    return "\n".join(line(row) for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pathgeo.tools.compute_plan", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--configfile",
        default="config/config.yaml",
        help="a config file (a preset, yours), laid over config/defaults.yaml",
    )
    parser.add_argument("--device", choices=["a100", "cpu"], default="a100", help="what the hours are of")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per device (default: the config's)")
    parser.add_argument("--data-root", default=None, help="where the datasets are (default: the config's data_root)")
    parser.add_argument(
        "--max-job-minutes",
        type=int,
        default=None,
        help="the site's time limit of one job (default: the config's max_job_minutes)",
    )
    args = parser.parse_args(argv)
    try:
        # The workflow's whole check first (its errors name the file and the line), then this plan's options.
        config = check_config([args.configfile]).config
        threads = args.threads or config["threads"]
        limit = args.max_job_minutes or max_job_minutes(config)
        rows, total = plan_table(config, args.device, threads, args.data_root or config.get("data_root"), limit)
    except ConfigCheckError as error:
        print(error, file=sys.stderr)
        return 1
    except ConfigError as error:
        print(f"{args.configfile} with these options: {error}", file=sys.stderr)
        return 1
    print(format_table(rows))
    jobs = sum(int(count) for row in rows[1:] for count in row[7].split("+"))
    print(
        f"\ntotal: {total:.1f} {args.device} hours for {len(rows) - 1} runs in {jobs} training and replay jobs "
        f"of at most {limit} minutes each"
        if limit
        else ""
    )
    for line in assumptions(args.device):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
