"""Which GPUs a job ran on, and how they are linked: recorded in a run's spec.json, compared by its replays.

With 3 or more ranks an all-reduce sums in the order of NCCL's ring, and NCCL builds the ring from the links
between the job's GPUs (NVLink, PCIe switch, host bridge, another socket). A replay on GPUs linked otherwise than
the reference's can sum in another order and leave the reference's trajectory by a rounding. So:

- a job of 3 or more GPUs asks SLURM for its node whole (`slurm_request`: `--exclusive`): then no other job
  decides which of the node's GPUs are left for it, and its rank r trains on the node's r-th GPU, so a reference
  and its replays use GPUs in the same places on nodes of one kind;
- every job on CUDA records its GPUs in rank order (name, UUID, PCI bus id) and the links between them as
  `nvidia-smi topo -m` names them (NV12, PIX, PXB, PHB, NODE, SYS; X for a GPU with itself) (`recorded`);
- a replay that drifts says how its GPUs differ from the reference's (`differences`).

Nothing of it runs on the CPU. Without nvidia-smi, the GPUs come from torch alone and the links stay unknown.
The parsing of nvidia-smi's output is tested on simulated output only: no GPU has run it yet.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from pathgeo import commands
from pathgeo.commands import Runner

log = logging.getLogger("pathgeo")

# Jobs of this many GPUs or more take their node whole: with 2 ranks an all-reduce has one addition, whose result
# does not depend on the order.
WHOLE_NODE_FROM = 3
WHOLE_NODE = "--exclusive"

GPU_QUERY = ["nvidia-smi", "--query-gpu=index,pci.bus_id,uuid,name", "--format=csv,noheader"]
TOPOLOGY_QUERY = ["nvidia-smi", "topo", "-m"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
GPU_COLUMN = re.compile(r"GPU(\d+)")
# nvidia-smi separates the matrix's cells by tabs; a copy from a terminal has runs of spaces instead.
CELL = re.compile(r"\t| {2,}")
PCI_ADDRESS = re.compile(r"([0-9A-Fa-f]+):([0-9A-Fa-f]+):([0-9A-Fa-f]+)(?:\.\d+)?")


@dataclass(frozen=True)
class Gpu:
    name: str
    uuid: str
    pci_bus_id: str


@dataclass(frozen=True)
class Topology:
    """A job's GPUs in rank order (rank r on cuda:r), and `links[i][j]`: how rank i's GPU reaches rank j's (empty
    when nvidia-smi is missing)."""

    gpus: tuple[Gpu, ...]
    links: tuple[tuple[str, ...], ...]

    def as_dict(self) -> dict[str, Any]:
        return {"gpus": [asdict(gpu) for gpu in self.gpus], "links": [list(row) for row in self.links]}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Topology:
        return cls(tuple(Gpu(**gpu) for gpu in values["gpus"]), tuple(tuple(row) for row in values["links"]))


def slurm_request(gpus: int) -> str:
    """What a job of `gpus` GPUs adds to its sbatch line so that it gets the same GPUs every time."""
    return WHOLE_NODE if gpus >= WHOLE_NODE_FROM else ""


def bus_address(text: str) -> tuple[int, int, int]:
    """(domain, bus, device) of a PCI address such as nvidia-smi's `00000000:07:00.0`."""
    found = PCI_ADDRESS.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"not a PCI address: {text!r}")
    domain, bus, device = (int(part, 16) for part in found.groups())
    return domain, bus, device


def parse_gpu_query(text: str) -> dict[tuple[int, int, int], tuple[int, Gpu]]:
    """nvidia-smi's GPUs (GPU_QUERY's lines) by PCI address: its index for the GPU and the GPU."""
    gpus = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        index, bus_id, uuid, name = (cell.strip() for cell in line.split(",", 3))
        gpus[bus_address(bus_id)] = (int(index), Gpu(name, uuid, bus_id))
    return gpus


def parse_topology_matrix(text: str) -> dict[tuple[int, int], str]:
    """The GPU-to-GPU cells of `nvidia-smi topo -m`, by nvidia-smi's GPU indices (the NIC and affinity columns
    left out)."""
    lines = [ANSI.sub("", line) for line in text.splitlines()]
    header = next((line for line in lines if line.strip().startswith("GPU0")), None)
    if header is None:
        raise ValueError("no GPU0 column in nvidia-smi topo -m's output")
    columns = {
        at: int(m.group(1)) for at, cell in enumerate(CELL.split(header)) if (m := GPU_COLUMN.fullmatch(cell.strip()))
    }
    cells = {}
    for line in lines[lines.index(header) + 1 :]:
        row = CELL.split(line)
        label = GPU_COLUMN.fullmatch(row[0].strip())
        if label is not None:
            for at, column in columns.items():
                cells[int(label.group(1)), column] = row[at].strip()
    return cells


def torch_gpus(count: int) -> list[tuple[tuple[int, int, int], Gpu]]:
    """The first `count` visible CUDA devices (rank order), by PCI address, as torch sees them."""
    found = []
    for index in range(count):
        props = torch.cuda.get_device_properties(index)
        address = (props.pci_domain_id, props.pci_bus_id, props.pci_device_id)
        found.append((address, Gpu(props.name, f"GPU-{props.uuid}", "{:08X}:{:02X}:{:02X}.0".format(*address))))
    return found


def read(count: int, run: Runner = commands.run) -> Topology:
    """The job's `count` GPUs in rank order and their links: torch says which GPUs the ranks use, nvidia-smi what
    they are and how they are linked. Where nvidia-smi fails, lists other GPUs or prints what this cannot read, the
    GPUs are torch's and the links unknown (with a warning): a record of the node is no reason to fail a job."""
    ranks = torch_gpus(count)
    unlinked = Topology(tuple(gpu for _, gpu in ranks), ())
    listed, matrix = run(GPU_QUERY), run(TOPOLOGY_QUERY)
    if listed.returncode != 0 or matrix.returncode != 0:
        log.warning("GPU links not recorded: nvidia-smi failed: %s", (listed.stderr or matrix.stderr).strip())
        return unlinked
    try:
        by_address = parse_gpu_query(listed.stdout)
        indices = [by_address[address][0] for address, _ in ranks]
        cells = parse_topology_matrix(matrix.stdout)
        links = tuple(tuple(cells[i, j] for j in indices) for i in indices)
    except (ValueError, KeyError, IndexError) as error:
        log.warning(
            "GPU links not recorded: nvidia-smi's output is not what pathgeo reads (%s: %s)",
            type(error).__name__,
            error,
        )
        return unlinked
    return Topology(tuple(by_address[address][1] for address, _ in ranks), links)


def recorded(device: torch.device, count: int, run: Runner = commands.run) -> dict[str, Any]:
    """What a job's settings (spec.json) record of its `count` GPUs: `{"gpus": ...}` on CUDA, nothing on the CPU."""
    return {"gpus": read(count, run).as_dict()} if device.type == "cuda" else {}


def differences(reference: dict[str, Any] | None, replay: dict[str, Any] | None) -> list[str]:
    """How the replay's GPUs (a `recorded` "gpus" entry) differ from the reference's; none when either was not
    recorded (a run on the CPU, or made before GPUs were recorded)."""
    if reference is None or replay is None:
        return []
    ours, theirs = Topology.from_dict(replay), Topology.from_dict(reference)
    found = [
        f"rank {rank}: {mine.name} where the reference had {other.name}"
        for rank, (mine, other) in enumerate(zip(ours.gpus, theirs.gpus))
        if mine.name != other.name
    ]
    if ours.links and theirs.links and ours.links != theirs.links:
        found.append(
            f"links between the ranks' GPUs {_matrix(ours.links)} where the reference had {_matrix(theirs.links)}"
        )
    return found


def _matrix(links: Sequence[Sequence[str]]) -> str:
    return "[" + "; ".join(" ".join(row) for row in links) + "]"
