"""Measure a LightningModule with pathgeo: the Observe callback in two fits of one Trainer setup.

    pip install pathgeo[lightning]
    python examples/lightning_module.py [--epochs 10] [--samples 4000] [--out steps.parquet]

The module is an MLP on MNIST-1D (generated locally by the `mnist1d` package) trained with SGD, momentum and
weight decay, and a cosine learning-rate schedule. `measure` fits it twice (the first fit gives w*) and
checks that the second fit ended exactly where the first did.
"""

import argparse

import lightning as L
import polars as pl
import torch
from mnist1d.data import get_dataset_args, make_dataset
from torch import nn
from torch.nn import functional as F

import pathgeo
from pathgeo.measurements.lightning import Observe


class Classifier(L.LightningModule):
    def __init__(self, epochs: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(40, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
        self.epochs = epochs

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        return [optimizer], [torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.epochs)]


def mnist1d(samples: int) -> torch.utils.data.TensorDataset:
    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = samples, 1.0, 0
    data = make_dataset(args)
    return torch.utils.data.TensorDataset(torch.from_numpy(data["x"]).float(), torch.from_numpy(data["y"]).long())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--out", help="write the per-step table here (parquet)")
    args = parser.parse_args()
    dataset = mnist1d(args.samples)

    def run(observe):
        L.seed_everything(0, verbose=False)
        module = Classifier(args.epochs)
        loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True)
        trainer = L.Trainer(
            max_epochs=args.epochs,
            accelerator="cpu",
            deterministic=True,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[Observe(observe)],
        )
        trainer.fit(module, loader)
        return module

    result = pathgeo.measure(run, references=["final"])
    print(
        result.steps.group_by("epoch", maintain_order=True).agg(
            pl.col("lr", "loss", "rsi_wd", "gamma", "gamma_wd").mean()
        )
    )
    if args.out:
        result.steps.write_parquet(args.out)


if __name__ == "__main__":
    main()
