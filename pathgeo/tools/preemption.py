"""A workflow's preempted SLURM jobs, put back into the queue from the submitting node.

Snakemake's SLURM executor plugin (2.8.0) counts a job in state PREEMPTED as still running. Where the partition
requeues preempted jobs itself (PreemptMode=REQUEUE, and the job submitted with `--requeue`, which the profile's
`slurm-requeue: true` gives), SLURM starts the job again under its id and the plugin waits for it. Where
preemption cancels (PreemptMode=CANCEL), the job stays PREEMPTED until slurmctld forgets it (MinJobAge) and the
workflow waits forever.

`Watch` closes that gap: every few seconds it asks squeue for the workflow's preempted jobs (the plugin names each
job after its run id) and requeues each one with `scontrol requeue`, which SLURM allows for a finished job that is
requeueable and that slurmctld still knows. The job then runs again under the same id (a reference resumes from
its workspace, results/runs/<run>/partial/) and the plugin sees it finish. Where SLURM refuses the requeue twice
in a row (a job submitted with `--no-requeue`), the watch fails with the job and the fix: the workflow cannot go on
by itself. `start` runs a watch in a thread of the Snakemake process and stops the workflow,
as Ctrl-C does, when it fails.

The commands run through an injected `Runner`, so that the decisions are tested on simulated squeue and scontrol
output. Messages are formatted before they reach the logger: Snakemake's logger prints a record's message without
its arguments.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from pathgeo import commands
from pathgeo.commands import Runner

PREEMPTED = "PREEMPTED"
# scontrol's refusal for a job that is pending again (SLURM, or someone, requeued it first): nothing to do.
ALREADY_PENDING = "pending"


class PreemptionError(RuntimeError):
    """SLURM refused to requeue a preempted job of the workflow."""


@dataclass(frozen=True)
class SlurmJob:
    """A job as squeue lists it: its id, state and the plugin's comment (`rule_<rule>_wildcards_<values>`)."""

    job_id: str
    state: str
    comment: str

    @property
    def label(self) -> str:
        """The job id with the rule and wildcards the plugin put in its comment."""
        return f"{self.job_id} ({self.comment})"


def preempted_command(run_name: str) -> list[str]:
    """squeue's list of the workflow's jobs that are PREEMPTED, one `id|state|comment` line each."""
    return ["squeue", "--noheader", f"--states={PREEMPTED}", f"--name={run_name}", "--format=%i|%T|%k"]


def requeue_command(job_id: str) -> list[str]:
    return ["scontrol", "requeue", job_id]


def parse_jobs(text: str) -> list[SlurmJob]:
    """The jobs of squeue's `%i|%T|%k` lines (blank lines skipped; a comment may hold `|`)."""
    jobs = []
    for line in text.splitlines():
        if not line.strip():
            continue
        job_id, state, comment = (line.split("|", 2) + ["", ""])[:3]
        jobs.append(SlurmJob(job_id.strip(), state.strip(), comment.strip()))
    return jobs


def refusal_message(job: SlurmJob, reason: str) -> str:
    return (
        f"SLURM refused to requeue the preempted job {job.label}: {reason or '(no reason given)'}. The workflow "
        "cannot go on by itself: Snakemake's SLURM plugin would wait for this job forever. Start Snakemake again "
        "with --rerun-incomplete (the profile sets it): the job is submitted anew, and a reference resumes from "
        "its last checkpoint in results/runs/<run>/partial/. To have SLURM requeue preempted jobs itself, keep "
        "`slurm-requeue: true` in the profile (sbatch --requeue) and ask for a partition with PreemptMode=REQUEUE "
        "(cluster/README.md, 'Preemption')."
    )


@dataclass
class Watch:
    """The preempted jobs of one Snakemake run (`run_name`: the plugin's run id, every job's name)."""

    run_name: str
    runner: Runner
    log: logging.Logger
    # job id -> SLURM's reason, for jobs whose last requeue was refused
    refused: dict[str, str] = field(default_factory=dict)

    def poll(self) -> list[SlurmJob]:
        """Requeue every preempted job of the run; the jobs requeued. Raises PreemptionError for a job whose
        requeue SLURM refused at this poll and at the one before (one refusal may be a passing slurmctld hiccup)."""
        listed = self.runner(preempted_command(self.run_name))
        if listed.returncode != 0:
            command = " ".join(preempted_command(self.run_name))
            self.log.warning(f"could not list preempted SLURM jobs ({command}): {listed.stderr.strip()}; trying again")
            return []
        preempted = [job for job in parse_jobs(listed.stdout) if job.state == PREEMPTED]
        self.refused = {
            job_id: reason for job_id, reason in self.refused.items() if job_id in {job.job_id for job in preempted}
        }
        requeued = []
        for job in preempted:
            result = self.runner(requeue_command(job.job_id))
            reason = (result.stderr or result.stdout).strip()
            if result.returncode == 0:
                self.log.warning(f"SLURM job {job.label} was preempted: requeued it (scontrol requeue)")
                self.refused.pop(job.job_id, None)
                requeued.append(job)
            elif ALREADY_PENDING in reason.lower():
                self.refused.pop(job.job_id, None)
            elif job.job_id in self.refused:
                raise PreemptionError(refusal_message(job, reason))
            else:
                self.log.warning(f"SLURM refused to requeue preempted job {job.label} ({reason}); trying again")
                self.refused[job.job_id] = reason
        return requeued

    def run(self, seconds: float, stop: threading.Event, on_failure: Callable[[PreemptionError], None]) -> None:
        """Poll every `seconds` until `stop` is set or a requeue is refused for good (then `on_failure`)."""
        while not stop.wait(seconds):
            try:
                self.poll()
            except PreemptionError as error:
                self.log.error(str(error))
                on_failure(error)
                return


def interrupt_workflow(_: PreemptionError) -> None:
    """Stop Snakemake as Ctrl-C does (it cancels its SLURM jobs and exits with an error): SIGINT to its main
    thread, which is the one blocked in Snakemake's scheduler and the one Python raises KeyboardInterrupt in."""
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


def start(run_name: str, seconds: float, log: logging.Logger) -> threading.Event:
    """Watch the run's jobs from a daemon thread of this process (it ends with the process); the Event stops it."""
    stop = threading.Event()
    watch = Watch(run_name, commands.run, log)
    threading.Thread(
        target=watch.run, args=(seconds, stop, interrupt_workflow), name="pathgeo-preemption", daemon=True
    ).start()
    log.info(f"requeueing preempted SLURM jobs of run {run_name} (squeue every {seconds:g} s)")
    return stop
