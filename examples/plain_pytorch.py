"""Measure a plain PyTorch training loop with pathgeo: a 1-D CNN with batch norm on MNIST-1D, AdamW with
weight decay, the usual optimizer.zero_grad().

    python examples/plain_pytorch.py [--epochs 10] [--samples 4000] [--out steps.parquet]

MNIST-1D is generated locally by the `mnist1d` package (no download). The loop is an ordinary one; the two
lines that mention `observe` are all that pathgeo adds to it.
"""

import argparse

import polars as pl
import torch
from mnist1d.data import get_dataset_args, make_dataset
from torch import nn
from torch.nn import functional as F

import pathgeo


def mnist1d(samples: int) -> torch.utils.data.TensorDataset:
    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = samples, 1.0, 0
    data = make_dataset(args)
    return torch.utils.data.TensorDataset(
        torch.from_numpy(data["x"]).float().unsqueeze(1), torch.from_numpy(data["y"]).long()
    )


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv1d(1, 16, 5, padding=2),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.MaxPool1d(2),
        nn.Conv1d(16, 32, 5, padding=2),
        nn.BatchNorm1d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--out", help="write the per-step table here (parquet)")
    args = parser.parse_args()
    dataset = mnist1d(args.samples)

    def run(observe):
        # Everything random is seeded in here: measure runs this twice and checks that both passes agree.
        torch.manual_seed(0)
        model = cnn()
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0)
        )
        for _ in range(args.epochs):
            for x, y in loader:
                optimizer.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                observe(model, loss, optimizer)
                optimizer.step()
            observe.end_epoch()
        return model

    result = pathgeo.measure(run, references=["final"])
    print(result.steps.group_by("epoch", maintain_order=True).agg(pl.col("loss", "rsi", "eb", "gamma").mean()))
    if args.out:
        result.steps.write_parquet(args.out)


if __name__ == "__main__":
    main()
