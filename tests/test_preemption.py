"""The watch over a workflow's preempted SLURM jobs (pathgeo.tools.preemption), on simulated squeue and scontrol output.

tests/test_slurm.py runs it against a real SLURM whose preemption cancels jobs (marker `slurm`)."""

from __future__ import annotations

import logging
import subprocess
import threading

import pytest

from pathgeo.tools.preemption import PreemptionError, Watch, parse_jobs, preempted_command, requeue_command

RUN = "3f1c7e1a-5b7d-4d8e-9a43-0c2b9e0a1f22"
REFERENCE = "rule_reference_wildcards_mnist1d-mlp8-sgd-lr0.05-wd1e-05-bs50-e2-s0-9c2090f8"


class Slurm:
    """squeue and scontrol as a scripted cluster: `listings` are squeue's answers in turn (the last one repeats),
    `refusals` the jobs whose requeue scontrol refuses, with SLURM's message."""

    def __init__(self, *listings: str, refusals: dict[str, str] | None = None, squeue_fails: bool = False):
        self.listings = list(listings)
        self.refusals = refusals or {}
        self.squeue_fails = squeue_fails
        self.calls: list[list[str]] = []

    def __call__(self, command: list[str]) -> subprocess.CompletedProcess:
        self.calls.append(command)
        if command[0] == "squeue":
            if self.squeue_fails:
                return subprocess.CompletedProcess(command, 1, "", "slurm_load_jobs error: Socket timed out")
            listing = self.listings.pop(0) if len(self.listings) > 1 else self.listings[0]
            return subprocess.CompletedProcess(command, 0, listing, "")
        job_id = command[-1]
        if job_id in self.refusals:
            return subprocess.CompletedProcess(command, 1, "", self.refusals[job_id])
        return subprocess.CompletedProcess(command, 0, "", "")

    def requeued(self) -> list[str]:
        return [command[-1] for command in self.calls if command[:2] == ["scontrol", "requeue"]]


def watch(slurm: Slurm) -> Watch:
    return Watch(RUN, slurm, logging.getLogger("test-preemption"))


def test_squeue_lists_the_runs_preempted_jobs_by_the_plugins_job_name():
    command = preempted_command(RUN)
    assert command[0] == "squeue" and f"--name={RUN}" in command and "--states=PREEMPTED" in command
    assert "--format=%i|%T|%k" in command and "--noheader" in command
    assert requeue_command("812") == ["scontrol", "requeue", "812"]


def test_parse_jobs():
    text = f"812|PREEMPTED|{REFERENCE}\n\n813|PREEMPTED|rule_prep_wildcards_a|b\n"
    jobs = parse_jobs(text)
    assert [(job.job_id, job.state) for job in jobs] == [("812", "PREEMPTED"), ("813", "PREEMPTED")]
    assert jobs[0].comment == REFERENCE and jobs[1].comment == "rule_prep_wildcards_a|b"
    assert jobs[0].label == f"812 ({REFERENCE})"


def test_each_preempted_job_is_requeued_once_and_logged(caplog):
    slurm = Slurm(f"812|PREEMPTED|{REFERENCE}\n813|PREEMPTED|rule_replay_wildcards_x_0000_0001\n", "")
    with caplog.at_level(logging.WARNING, logger="test-preemption"):
        requeued = watch(slurm).poll()
    assert [job.job_id for job in requeued] == ["812", "813"] and slurm.requeued() == ["812", "813"]
    # Formatted before it reaches the logger: Snakemake's prints a record's message without its arguments.
    assert any(f"SLURM job 812 ({REFERENCE}) was preempted: requeued it" in record.msg for record in caplog.records)
    # Back in the queue, they are no longer listed as preempted: nothing more to do.
    assert watch(slurm).poll() == [] and slurm.requeued() == ["812", "813"]


def test_jobs_in_other_states_are_left_alone():
    """squeue filters by state; a line in another state (a job requeued between two calls) is not touched."""
    slurm = Slurm(f"812|PENDING|{REFERENCE}\n")
    assert watch(slurm).poll() == [] and slurm.requeued() == []


def test_a_refusal_is_tried_again_then_fails_with_the_job_and_the_fix():
    refusal = "Requested operation is presently disabled for job 812"
    slurm = Slurm(f"812|PREEMPTED|{REFERENCE}\n", refusals={"812": refusal})
    watcher = watch(slurm)
    assert watcher.poll() == []  # one refusal may be a passing hiccup of slurmctld
    with pytest.raises(PreemptionError) as raised:
        watcher.poll()
    message = str(raised.value)
    assert f"812 ({REFERENCE})" in message and refusal in message
    assert "--rerun-incomplete" in message and "results/runs/<run>/partial/" in message
    assert "PreemptMode=REQUEUE" in message and "slurm-requeue: true" in message


def test_a_refusal_followed_by_a_requeue_is_forgotten():
    slurm = Slurm(f"812|PREEMPTED|{REFERENCE}\n", refusals={"812": "Socket timed out on send/recv operation"})
    watcher = watch(slurm)
    watcher.poll()
    slurm.refusals.clear()
    assert [job.job_id for job in watcher.poll()] == ["812"] and watcher.refused == {}


def test_a_job_that_is_pending_again_is_not_an_error():
    slurm = Slurm(f"812|PREEMPTED|{REFERENCE}\n", refusals={"812": "Job is pending execution for job 812"})
    watcher = watch(slurm)
    for _ in range(3):
        assert watcher.poll() == []
    assert watcher.refused == {}


def test_a_failing_squeue_is_a_warning_not_a_failure(caplog):
    slurm = Slurm(squeue_fails=True)
    with caplog.at_level(logging.WARNING, logger="test-preemption"):
        for _ in range(3):
            assert watch(slurm).poll() == []
    assert "could not list preempted SLURM jobs" in caplog.text and "Socket timed out" in caplog.text


def test_the_watch_stops_the_workflow_when_a_requeue_is_refused_for_good(caplog):
    slurm = Slurm(f"812|PREEMPTED|{REFERENCE}\n", refusals={"812": "Invalid job id specified for job 812"})
    failures: list[PreemptionError] = []
    with caplog.at_level(logging.ERROR, logger="test-preemption"):
        watch(slurm).run(0.01, threading.Event(), failures.append)
    assert len(failures) == 1 and "Invalid job id specified" in str(failures[0])
    assert "SLURM refused to requeue the preempted job 812" in caplog.text


def test_the_watch_ends_when_stopped():
    slurm = Slurm("")
    stop = threading.Event()
    thread = threading.Thread(target=watch(slurm).run, args=(0.01, stop, pytest.fail))
    thread.start()
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
