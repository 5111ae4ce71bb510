"""A job's GPUs and their links (pathgeo.training.topology), read from simulated torch device properties and nvidia-smi
output: no GPU needed. The replay's error that uses them is tested in tests/test_distributed.py, the sbatch
request of multi-GPU jobs in tests/test_slurm.py."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest
import torch

from pathgeo.training import topology
from pathgeo.training.topology import Gpu, Topology, differences, parse_gpu_query, parse_topology_matrix, read, recorded

# An 8-GPU node as `nvidia-smi --query-gpu=index,pci.bus_id,uuid,name --format=csv,noheader` lists it.
GPU_LIST = "\n".join(
    f"{index}, 00000000:{bus:02X}:00.0, GPU-{index:08d}-aaaa-bbbb-cccc-dddddddddddd, NVIDIA A100-SXM4-80GB"
    for index, bus in enumerate([0x07, 0x0F, 0x47, 0x4E, 0x87, 0x90, 0xB7, 0xBD])
)
BUSES = {index: bus for index, bus in enumerate([0x07, 0x0F, 0x47, 0x4E, 0x87, 0x90, 0xB7, 0xBD])}


def matrix_text(links: dict[tuple[int, int], str], gpus: int = 8) -> str:
    """`nvidia-smi topo -m` as the driver prints it: tab-separated, a NIC column, affinities, a legend (and the
    terminal's underline escape around the header)."""
    columns = [f"GPU{j}" for j in range(gpus)] + ["NIC0", "CPU Affinity", "NUMA Affinity", "GPU NUMA ID"]
    header = "\x1b[4m\t" + "\t".join(columns) + "\x1b[0m"
    rows = [
        f"GPU{i}\t"
        + "\t".join(" X " if i == j else links.get((min(i, j), max(i, j)), "SYS") for j in range(gpus))
        + f"\tPXB\t{48 * (i // 4)}-{48 * (i // 4) + 47}\t{i // 4}\t\tN/A"
        for i in range(gpus)
    ]
    nic = "NIC0\t" + "\t".join("PXB" for _ in range(gpus)) + "\t X \t\t\t"
    legend = [
        "",
        "Legend:",
        "",
        "  X    = Self",
        "  SYS  = Connection traversing PCIe as well as the SMP interconnect",
        "  NV#  = Connection traversing a bonded set of # NVLinks",
        "",
        "NIC Legend:",
        "",
        "  NIC0: mlx5_0",
    ]
    return "\n".join([header, *rows, nic, *legend]) + "\n"


# NVSwitch: every pair NV12.
ALL_NVLINK = {(i, j): "NV12" for i in range(8) for j in range(i + 1, 8)}
# PCIe cards bridged in pairs (0-1, 2-3, ...), the pairs on one socket (NODE) or the other (SYS).
PAIRS = {
    (i, j): ("NV4" if j == i + 1 and i % 2 == 0 else "NODE" if i // 4 == j // 4 else "SYS")
    for i in range(8)
    for j in range(i + 1, 8)
}


def nvidia_smi(links: dict[tuple[int, int], str]):
    def run(command: list[str]) -> subprocess.CompletedProcess:
        text = GPU_LIST if "--query-gpu=index,pci.bus_id,uuid,name" in command else matrix_text(links)
        return subprocess.CompletedProcess(command, 0, text + "\n", "")

    return run


def no_nvidia_smi(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess(command, 1, "", "[Errno 2] No such file or directory: 'nvidia-smi'")


@pytest.fixture
def job_gpus(monkeypatch):
    """torch sees the GPUs at nvidia-smi's indices 6, 4 and 5, in that order (as SLURM's CUDA_VISIBLE_DEVICES and
    CUDA's enumeration may order them)."""
    order = [6, 4, 5]

    def properties(index: int) -> SimpleNamespace:
        bus = BUSES[order[index]]
        return SimpleNamespace(
            name="NVIDIA A100-SXM4-80GB", uuid=f"torch-{order[index]}", pci_domain_id=0, pci_bus_id=bus, pci_device_id=0
        )

    monkeypatch.setattr(torch.cuda, "get_device_properties", properties)
    return order


def test_the_matrix_is_read_by_gpu_index():
    cells = parse_topology_matrix(matrix_text(PAIRS))
    assert cells[0, 1] == "NV4" and cells[1, 0] == "NV4" and cells[0, 2] == "NODE" and cells[0, 5] == "SYS"
    assert cells[3, 3] == "X" and len(cells) == 64  # the NIC column, the affinities and the legend left out


def test_a_matrix_copied_from_a_terminal_reads_the_same():
    spaced = matrix_text(PAIRS).replace("\t", "    ")
    assert parse_topology_matrix(spaced) == parse_topology_matrix(matrix_text(PAIRS))


def test_the_gpu_list_is_keyed_by_pci_address():
    gpus = parse_gpu_query(GPU_LIST)
    index, gpu = gpus[0, 0x87, 0]
    assert index == 4 and gpu.name == "NVIDIA A100-SXM4-80GB" and gpu.pci_bus_id == "00000000:87:00.0"
    assert gpu.uuid.startswith("GPU-00000004")


def test_the_jobs_gpus_in_rank_order_with_their_links(job_gpus):
    found = read(3, nvidia_smi(PAIRS))
    assert [gpu.uuid[:12] for gpu in found.gpus] == ["GPU-00000006", "GPU-00000004", "GPU-00000005"]
    assert found.links == (("X", "NODE", "NODE"), ("NODE", "X", "NV4"), ("NODE", "NV4", "X"))
    assert Topology.from_dict(found.as_dict()) == found


def test_without_nvidia_smi_the_gpus_come_from_torch_and_the_links_stay_unknown(job_gpus):
    found = read(3, no_nvidia_smi)
    assert found.links == () and [gpu.pci_bus_id for gpu in found.gpus] == [
        "00000000:B7:00.0",
        "00000000:87:00.0",
        "00000000:90:00.0",
    ]


def test_output_it_cannot_read_leaves_the_links_unknown_and_says_so(job_gpus, caplog):
    def garbled(command: list[str]) -> subprocess.CompletedProcess:
        text = GPU_LIST if "topo" in command else "GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-0)"
        return subprocess.CompletedProcess(command, 0, text, "")

    found = read(3, garbled)
    assert found.links == () and [gpu.name for gpu in found.gpus] == ["NVIDIA A100-SXM4-80GB"] * 3
    assert "GPU links not recorded: nvidia-smi's output is not what pathgeo reads (ValueError" in caplog.text
    caplog.clear()
    assert read(3, no_nvidia_smi).links == () and "No such file or directory: 'nvidia-smi'" in caplog.text


def test_on_the_cpu_nothing_is_read(monkeypatch):
    monkeypatch.setattr(topology, "read", lambda *args: pytest.fail("read GPUs on the CPU"))
    assert recorded(torch.device("cpu"), 4) == {}


def test_a_cuda_job_records_its_gpus(job_gpus):
    entry = recorded(torch.device("cuda", 0), 3, nvidia_smi(ALL_NVLINK))
    assert list(entry) == ["gpus"] and entry["gpus"]["links"][0] == ["X", "NV12", "NV12"]
    assert [gpu["name"] for gpu in entry["gpus"]["gpus"]] == ["NVIDIA A100-SXM4-80GB"] * 3


def test_differences_name_the_ranks_and_the_links():
    a100 = Topology(
        tuple(Gpu("NVIDIA A100-SXM4-80GB", f"GPU-{i}", f"b{i}") for i in range(3)),
        (("X", "NV12", "NV12"), ("NV12", "X", "NV12"), ("NV12", "NV12", "X")),
    )
    elsewhere = Topology(tuple(Gpu("NVIDIA A100-SXM4-80GB", f"GPU-{i + 3}", f"c{i}") for i in range(3)), a100.links)
    assert differences(a100.as_dict(), elsewhere.as_dict()) == []  # other GPUs of the same kind, linked alike
    pcie = Topology(
        (a100.gpus[0], Gpu("NVIDIA A100-PCIE-40GB", "GPU-9", "d"), a100.gpus[2]),
        (("X", "NV4", "SYS"), ("NV4", "X", "SYS"), ("SYS", "SYS", "X")),
    )
    found = differences(a100.as_dict(), pcie.as_dict())
    assert found[0] == "rank 1: NVIDIA A100-PCIE-40GB where the reference had NVIDIA A100-SXM4-80GB"
    assert found[1] == (
        "links between the ranks' GPUs [X NV4 SYS; NV4 X SYS; SYS SYS X] where the reference had "
        "[X NV12 NV12; NV12 X NV12; NV12 NV12 X]"
    )
    assert differences(None, pcie.as_dict()) == [] and differences(a100.as_dict(), None) == []
    unlinked = Topology(a100.gpus, ())
    assert differences(a100.as_dict(), unlinked.as_dict()) == []


def test_jobs_of_three_or_more_gpus_ask_for_their_node_whole():
    assert [topology.slurm_request(n) for n in range(6)] == ["", "", "", "--exclusive", "--exclusive", "--exclusive"]
