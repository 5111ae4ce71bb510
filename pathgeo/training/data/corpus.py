"""Word corpora (WikiText-2, WikiText-103, Penn Treebank): pytorch/examples word_language_model `data.py`
tokenization, but batch-first (see `batchify`), for next-token prediction."""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pathgeo.training.data import DatasetKind
from pathgeo.training.data.files import DatasetError, fingerprint
from pathgeo.training.data.task import Batch, StepLoss, Task

WIKITEXT_FILES = {"train": "wiki.train.tokens", "valid": "wiki.valid.tokens", "test": "wiki.test.tokens"}
PTB_FILES = {"train": "ptb.train.txt", "valid": "ptb.valid.txt", "test": "ptb.test.txt"}
EOS = "<eos>"
UNK = "<unk>"


@dataclass(frozen=True)
class Corpus:
    """Token ids of the three splits (int64, 1-D) and the vocabulary (id -> word) built from training only."""

    vocab: tuple[str, ...]
    train: Tensor
    valid: Tensor
    test: Tensor
    unk_id: int
    # Tokens of valid/test that are not in the training vocabulary and were mapped to <unk>, per split.
    # Zero on the real WikiText and PTB files, whose valid/test words all occur in training.
    unseen: dict[str, int] = field(default_factory=dict)

    @property
    def word2idx(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.vocab)}

    def __len__(self) -> int:
        return len(self.vocab)


def _read_lines(path: Path) -> Iterator[list[str]]:
    # As pytorch/examples: utf-8, split on whitespace, one <eos> per line (blank lines give a lone <eos>).
    try:
        with open(path, encoding="utf8") as f:
            for line in f:
                yield line.split() + [EOS]
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not valid UTF-8 text ({exc}); expected a tokenized corpus file") from exc


def _long_tensor(ids: array) -> Tensor:
    # array('q') grows without per-token Python objects (WikiText-103 has 103M tokens); one copy into torch.
    return torch.from_numpy(np.frombuffer(ids, dtype=np.int64).copy())


def load_corpus(root: Path, files: Mapping[str, str] = WIKITEXT_FILES) -> Corpus:
    """Read `root/files[split]` for train, valid and test, as pytorch/examples word_language_model `data.py`.

    One difference on purpose: the vocabulary comes from the TRAINING split only (pytorch/examples adds valid and
    test words too). Ids follow first appearance in training, so on the real WikiText/PTB files (where every
    valid/test word occurs in training) the ids and the vocabulary equal pytorch/examples'. A valid/test token
    unseen in training becomes <unk>, which the corpora already use; if training has no <unk>, it is appended
    as the last id. `Corpus.unseen` counts those tokens per split.
    Defaults: WikiText (`wiki.{train,valid,test}.tokens`); PTB_FILES for Penn Treebank.
    """
    root = Path(root)
    paths = _corpus_paths(root, files)
    word2idx: dict[str, int] = {}
    vocab: list[str] = []
    train_ids = array("q")
    for words in _read_lines(paths["train"]):
        for word in words:
            idx = word2idx.get(word)
            if idx is None:
                idx = word2idx[word] = len(vocab)
                vocab.append(word)
            train_ids.append(idx)
    if not any(w != EOS for w in vocab):
        raise DatasetError(f"{paths['train']}: no tokens; expected a tokenized training corpus")
    if UNK not in word2idx:
        word2idx[UNK] = len(vocab)
        vocab.append(UNK)
    unk = word2idx[UNK]
    splits = {"train": _long_tensor(train_ids)}
    unseen = {}
    for split in ("valid", "test"):
        ids = array("q")
        n_unseen = 0
        for words in _read_lines(paths[split]):
            for word in words:
                idx = word2idx.get(word)
                if idx is None:
                    idx, n_unseen = unk, n_unseen + 1
                ids.append(idx)
        splits[split] = _long_tensor(ids)
        unseen[split] = n_unseen
    return Corpus(tuple(vocab), splits["train"], splits["valid"], splits["test"], unk, unseen)


def _corpus_paths(root: Path, files: Mapping[str, str]) -> dict[str, Path]:
    """The three split files, each of which must be there (the fingerprint and the loader both ask)."""
    if set(files) != {"train", "valid", "test"}:
        raise ValueError(f"files must name train, valid and test, got {sorted(files)}")
    paths = {split: root / files[split] for split in ("train", "valid", "test")}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise DatasetError(
            f"{missing[0]}: missing; expected the corpus files {', '.join(files.values())} in {root}"
            + (f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else "")
        )
    return paths


def corpus_fingerprint(root: Path, files: Mapping[str, str] = WIKITEXT_FILES) -> dict:
    return fingerprint(Path(root), list(_corpus_paths(Path(root), files).values()))


def batchify(tokens: Tensor, batch_size: int) -> Tensor:
    """BATCH-FIRST streams: (batch_size, L) with row n = tokens[n*L:(n+1)*L], L = len(tokens) // batch_size.

    pytorch/examples' `batchify` returns the TRANSPOSE, (L, batch_size), for its seq-first models (column n is
    stream n). Here row n is stream n, to match `batch_first=True` transformers: a batch is a column window
    `source[:, i:i+T]`, not a row window. Trailing tokens that do not fill a row are dropped, as there.
    """
    if tokens.dim() != 1:
        raise ValueError(f"expected a 1-D token tensor, got shape {tuple(tokens.shape)}")
    length = tokens.numel() // batch_size
    if length < 2:
        raise ValueError(f"{tokens.numel()} tokens cannot make {batch_size} streams of at least 2 tokens")
    return tokens[: batch_size * length].view(batch_size, length).contiguous()


def get_batch(source: Tensor, i: int, seq_len: int) -> tuple[Tensor, Tensor]:
    """Inputs source[:, i:i+T] and next-token targets source[:, i+1:i+1+T], both (N, T), T = min(seq_len, L-1-i).

    Unlike pytorch/examples the targets are NOT flattened: flatten logits (N, T, V) and targets (N, T) the same
    way (`logits.reshape(-1, V)`, `targets.reshape(-1)`), both row-major over (N, T).
    """
    t = min(seq_len, source.shape[1] - 1 - i)
    if t <= 0:
        raise IndexError(f"position {i} leaves no next-token target in streams of length {source.shape[1]}")
    return source[:, i : i + t], source[:, i + 1 : i + 1 + t]


def num_sequence_batches(source: Tensor, seq_len: int, drop_last: bool = False) -> int:
    usable = source.shape[1] - 1
    return usable // seq_len if drop_last else math.ceil(usable / seq_len)


def sequence_batches(source: Tensor, seq_len: int, drop_last: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
    """All (inputs, targets) windows of a batchified source in order; the last is shorter unless `drop_last`."""
    for step in range(num_sequence_batches(source, seq_len, drop_last)):
        yield get_batch(source, step * seq_len, seq_len)


class LanguageModel(Task):
    """Next-token prediction on a word corpus, batch-first: the training tokens are cut into batch_size
    contiguous streams (rows), and each step reads the next seq_len columns, as pytorch/examples does
    (in its transposed, time-first layout)."""

    def load(self, corpus) -> None:
        self.num_classes = len(corpus)
        seq_len = self.spec.data.params["seq_len"]
        self.seq_len = seq_len
        self.train_source = batchify(corpus.train, self.spec.batch_size).to(self.device)
        self.val_source = batchify(corpus.valid, self.spec.batch_size).to(self.device)

    @property
    def steps_per_epoch(self) -> int:
        return num_sequence_batches(self.train_source, self.seq_len)

    def batches(self, epoch: int) -> Iterator[Batch]:
        # A minibatch is every stream's next window; on several devices each rank reads its part of the streams.
        return sequence_batches(self.shard.part(self.train_source), self.seq_len)

    def loss(self, batch: Batch) -> StepLoss:
        x, y = batch
        logits = self.model(x)
        return StepLoss(
            F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)),
            (logits.argmax(-1) == y).sum(),
            y.numel(),
        )

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        metrics = self._evaluate_batches(sequence_batches(self.val_source, self.seq_len))
        metrics["val_perplexity"] = math.exp(metrics["val_loss"])
        return metrics


KIND = DatasetKind(
    name="corpus",
    task=LanguageModel,
    input="tokens",
    params={
        "path": {"type": "string", "description": "below data_root; holds the three token files"},
        "files": {
            "type": "object",
            "additionalProperties": False,
            "required": ["train", "valid", "test"],
            "properties": {"train": {"type": "string"}, "valid": {"type": "string"}, "test": {"type": "string"}},
        },
        "seq_len": {"type": "integer", "minimum": 1},
    },
    required=("path", "files", "seq_len"),
    fingerprint=lambda root, params: corpus_fingerprint(root, params["files"]),
    load=lambda root, params: load_corpus(root, params["files"]),
    data_parallel=True,
)
