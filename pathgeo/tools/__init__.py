"""The tools, each a `pathgeo` subcommand: doctor, bench, precision check, compute plan; the command line
itself; and the SLURM preemption watchdog the workflow starts."""
