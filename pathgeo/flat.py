"""Parameters and gradients as views into one flat (2, n) buffer.

Row 0 holds every trainable parameter, row 1 every gradient. Models and optimizers see ordinary tensors;
the probe sees two vectors and computes each metric in a handful of kernels instead of concatenating all
parameters every step.
"""

from __future__ import annotations

import torch
from torch import nn


class FlatParameters:
    def __init__(self, params: list[nn.Parameter]):
        if not params:
            raise ValueError("model has no trainable parameters")
        first = params[0]
        if any(p.dtype != first.dtype or p.device != first.device for p in params):
            raise ValueError("flat parameters need one dtype and one device")
        self.params = params
        self.numel = sum(p.numel() for p in params)
        self.buffer = torch.zeros(2, self.numel, dtype=first.dtype, device=first.device)
        offset = 0
        for p in params:
            n = p.numel()
            self.buffer[0, offset : offset + n].copy_(p.detach().reshape(-1))
            p.data = self.buffer[0, offset : offset + n].view_as(p)
            # Autograd accumulates into an existing .grad in place, so the view survives every backward
            # as long as gradients are zeroed rather than set to None.
            p.grad = self.buffer[1, offset : offset + n].view_as(p)
            offset += n

    @property
    def weights(self) -> torch.Tensor:
        return self.buffer[0]

    @property
    def grads(self) -> torch.Tensor:
        return self.buffer[1]

    def zero_grad(self) -> None:
        self.buffer[1].zero_()

    def check_views(self) -> None:
        """Raise if something replaced a parameter or gradient tensor (then the probe would read stale data)."""
        base = self.buffer.untyped_storage().data_ptr()
        for p in self.params:
            if p.untyped_storage().data_ptr() != base or p.grad is None or p.grad.untyped_storage().data_ptr() != base:
                raise RuntimeError("a parameter or its gradient no longer lives in the flat buffer")


def relative_drift(replayed: torch.Tensor, reference: torch.Tensor) -> float:
    """‖replayed − reference‖ / ‖reference‖ in float64: how far a replay's weights are from the reference's."""
    replayed, reference = replayed.double(), reference.to(replayed.device).double()
    return (torch.linalg.vector_norm(replayed - reference) / torch.linalg.vector_norm(reference)).item()
