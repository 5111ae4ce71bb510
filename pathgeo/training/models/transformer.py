"""The word-level Transformer language model: pytorch/examples word_language_model's TransformerModel,
batch-first, (N, T) int64 tokens -> (N, T, vocab) logits, causal mask, sinusoidal positions.

Layout decision: tokens are (N, T) = (batch, time) and logits (N, T, vocab); the encoder layers are built with
batch_first=True and the positional encoding and causal mask are indexed by the time axis (dim 1). The
pytorch/examples model is time-first (T, N); feeding it (N, T) data, as the authors' training loop does
(`model(data[:, :-1])` with a time-first model), makes attention and the causal mask run across the batch.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from pathgeo.training.models import Model, ParameterCount, Width, require_unit_width

WIKITEXT2_VOCAB = 33278  # pytorch/examples' data.Corpus vocabulary of WikiText-2 (train+valid+test, with <eos>)


class PositionalEncoding(nn.Module):
    """Sinusoidal positions added to (N, T, D) embeddings, then dropout."""

    def __init__(self, d_model: int, dropout: float = 0.0, max_len: int = 5000):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe, persistent=False)  # a constant, not a parameter; kept out of checkpoints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(x + self.pe[: x.size(1)])


class TransformerLM(nn.Module):
    """Embedding * sqrt(ninp) + positions -> causal TransformerEncoder -> Linear to the vocabulary (logits)."""

    def __init__(
        self,
        ntoken: int,
        ninp: int = 128,
        nhead: int = 2,
        nhid: int = 128,
        nlayers: int = 2,
        dropout: float = 0.0,
        max_len: int = 5000,
    ):
        super().__init__()
        self.ninp = ninp
        self.pos_encoder = PositionalEncoding(ninp, dropout, max_len)
        layer = nn.TransformerEncoderLayer(ninp, nhead, nhid, dropout, batch_first=True)
        # nn.TransformerEncoder deep-copies `layer`, so all layers start from the same weights (as in
        # pytorch/examples and the authors' code).
        self.transformer_encoder = nn.TransformerEncoder(layer, nlayers, enable_nested_tensor=False)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.decoder = nn.Linear(ninp, ntoken)
        initrange = 0.1
        nn.init.uniform_(self.encoder.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -initrange, initrange)

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        """src: (N, T) int64 token ids -> (N, T, ntoken) logits; position t sees only positions <= t."""
        if src.dim() != 2:
            raise ValueError(f"expected (batch, time) token ids, got shape {tuple(src.shape)}")
        length = src.size(1)
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=src.device, dtype=torch.float32)
        x = self.pos_encoder(self.encoder(src) * math.sqrt(self.ninp))
        with attention_backends():
            x = self.transformer_encoder(x, mask=mask, is_causal=True)
        return self.decoder(x)


def attention_backends() -> contextlib.AbstractContextManager:
    """Deterministic runs attend by the math backend of scaled-dot-product attention: on CUDA the flash and
    memory-efficient backwards are not deterministic (under warn_only torch only warns, and a replay then drifts),
    and the math backend's backward is matmuls and a softmax. Autograd records the backend chosen in forward, so
    covering forward covers backward. The CPU takes the same path, as everywhere else in a run."""
    if torch.are_deterministic_algorithms_enabled():
        return sdpa_kernel(SDPBackend.MATH)
    return contextlib.nullcontext()


def transformer_lm(
    num_classes: int,
    width: float = 1.0,
    heads: int = 2,
    layers: int = 2,
    ninp: int = 128,
    nhid: int = 128,
    dropout: float = 0.0,
    max_len: int = 5000,
) -> nn.Module:
    """`num_classes` is the vocabulary size. Defaults are the authors' command-line defaults (emsize 128, nhid 128,
    nhead 2, nlayers 2, dropout 0); note their build_nlp_model overrode them with nhead=4, nlayers=12."""
    require_unit_width("transformer_lm", width)
    return TransformerLM(num_classes, ninp, heads, nhid, layers, dropout, max_len)


MODELS = (
    # 257 * vocab + 99_584 * layers, 2 heads, 2 layers
    Model("transformer_lm", transformer_lm, "tokens", Width.NONE, (ParameterCount(8_751_614, WIKITEXT2_VOCAB),)),
)
