"""What every training or replay job does first: settle the device, determinism, threads and data."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import torch

from pathgeo import data
from pathgeo.devices import configure_determinism, select_device
from pathgeo.spec import RunSpec

log = logging.getLogger("pathgeo")


@dataclass
class Job:
    spec: RunSpec
    device: torch.device
    data: Any
    settings: dict[str, object]


def start_job(
    spec_json: str,
    device: str,
    deterministic: bool,
    threads: int,
    manifest_path: str,
    tensors_path: str | None = None,
    data_root: str = ".",
) -> Job:
    spec = RunSpec.from_canonical(json.loads(spec_json))
    settings = configure_determinism(deterministic)
    torch.set_num_threads(threads)
    chosen = select_device(device)
    settings.update(device=str(chosen), threads=threads, torch=torch.__version__)
    log.info("run %s on %s (%d threads, deterministic=%s)", spec.run_id, chosen, threads, deterministic)
    return Job(spec, chosen, data.load_for_run(spec.data, data_root, tensors_path, manifest_path), settings)


def start_workflow_job(smk) -> Job:
    """`start_job` from a Snakemake rule's params, threads and inputs (reference and replay share them)."""
    return start_job(
        smk.params.spec,
        smk.params.device,
        smk.params.deterministic,
        smk.threads,
        smk.input.manifest,
        smk.input.get("tensors"),
        smk.params.data_root,
    )
