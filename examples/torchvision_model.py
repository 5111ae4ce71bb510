"""Measure a torchvision model with pathgeo: ResNet-18 on CIFAR-10-shaped images, SGD with momentum and
weight decay, two reference points (the end and the end of the first epoch).

    python examples/torchvision_model.py [--epochs 3] [--samples 2048] [--out steps.parquet]

The images are random tensors made here (nothing is downloaded); swap in torchvision.datasets.CIFAR10 and a
transform for real data. On a GPU pass --device cuda: the probe then runs its Triton kernels, and
measure's check that both passes agree needs deterministic kernels, which torch.use_deterministic_algorithms
and CUBLAS_WORKSPACE_CONFIG=:4096:8 give.
"""

import argparse

import polars as pl
import torch
from torch.nn import functional as F
from torchvision.models import resnet18

import pathgeo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", help="write the per-step table here (parquet)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.use_deterministic_algorithms(True)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.samples, 3, 32, 32, generator=generator)
    labels = torch.randint(0, 10, (args.samples,), generator=generator)
    dataset = torch.utils.data.TensorDataset(images, labels)

    def run(observe):
        torch.manual_seed(0)
        model = resnet18(num_classes=10).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=args.batch_size, shuffle=True, generator=torch.Generator().manual_seed(0)
        )
        for _ in range(args.epochs):
            model.train()
            for x, y in loader:
                optimizer.zero_grad()
                loss = F.cross_entropy(model(x.to(device)), y.to(device))
                loss.backward()
                observe(model, loss, optimizer)
                optimizer.step()
            observe.end_epoch()
        return model

    result = pathgeo.measure(run, references=["final", 1])
    # Each reference point's rows before it is reached (at w* itself d = 0, and RSI and γ are NaN).
    before = pl.col("epoch") < pl.col("reference").replace_strict(result.references)
    print(
        result.steps.filter(before)
        .group_by("reference", "epoch", maintain_order=True)
        .agg(pl.col("loss", "rsi", "rsi_wd", "gamma", "upd_gamma").mean())
    )
    if args.out:
        result.steps.write_parquet(args.out)


if __name__ == "__main__":
    main()
