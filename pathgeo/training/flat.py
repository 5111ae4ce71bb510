"""Parameters and gradients as views into one flat (2, n) buffer.

Row 0 holds every trainable parameter, row 1 every gradient. Models and optimizers see ordinary tensors;
the probe sees two vectors and computes each metric in a handful of kernels instead of concatenating all
parameters every step.

The weights stay views for good: nothing in a training loop replaces a parameter's tensor (load_state_dict
copies in place). Gradients may leave: `optimizer.zero_grad()` sets them to None by default (torch ≥ 2.0)
and backward then allocates new ones. `gather_grads` brings them back into row 1, so that a loop zeroing
either way is measured, and a loop that zeroes in place (or calls `zero_grad()` here) keeps them views and
copies nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

# What a reference point may be given as: a module, a state_dict, the trainable parameters' tensors in order,
# or one flat vector in this buffer's order.
Point = nn.Module | Mapping[str, torch.Tensor] | Sequence[torch.Tensor] | torch.Tensor


class FlatParameters:
    def __init__(self, params: list[nn.Parameter], names: list[str] | None = None, zero_missing: bool = True):
        """`names` are the parameters' names in their module (FlatParameters.of gives them): they let a
        reference point be a module or a state_dict. A gradient a parameter already has is copied into its
        view; one it lacks becomes a zero view, or stays None with `zero_missing=False`: a loop that sets
        gradients to None then still skips, in its optimizer, a parameter the loss does not reach."""
        if not params:
            raise ValueError("model has no trainable parameters")
        if names is not None and len(names) != len(params):
            raise ValueError(f"{len(names)} names for {len(params)} parameters")
        first = params[0]
        mixed = sorted({f"{p.dtype} on {p.device}" for p in params})
        if len(mixed) > 1:
            raise ValueError(f"flat parameters need one dtype on one device; the trainable parameters are {mixed}")
        self.params = params
        self.names = names
        self.numel = sum(p.numel() for p in params)
        self.buffer = torch.zeros(2, self.numel, dtype=first.dtype, device=first.device)
        self._grad_views = []
        offset = 0
        for p in params:
            n = p.numel()
            weight, grad = (self.buffer[row, offset : offset + n].view_as(p) for row in (0, 1))
            weight.copy_(p.detach())
            p.data = weight
            if p.grad is not None:
                grad.copy_(p.grad)
            if p.grad is not None or zero_missing:
                # Autograd accumulates into an existing .grad in place, so the view survives every backward
                # as long as gradients are zeroed rather than set to None.
                p.grad = grad
            self._grad_views.append(grad)
            offset += n

    @classmethod
    def of(cls, module: nn.Module, zero_missing: bool = True) -> FlatParameters:
        """The module's trainable parameters (requires_grad), in its order, with their names."""
        named = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
        return cls([p for _, p in named], [name for name, _ in named], zero_missing)

    @property
    def weights(self) -> torch.Tensor:
        return self.buffer[0]

    @property
    def grads(self) -> torch.Tensor:
        return self.buffer[1]

    def zero_grad(self) -> None:
        self.buffer[1].zero_()

    def gather_grads(self) -> None:
        """Make row 1 hold every parameter's current gradient: one that is its view is there already, one the
        loop replaced is copied in (one fused copy), a missing one (set to None and not reached by the loss)
        reads as zero. The parameters' .grad are left as the loop made them."""
        targets, sources, missing = [], [], []
        for p, view in zip(self.params, self._grad_views, strict=True):
            grad = p.grad
            if grad is view:
                continue
            if grad is None:
                missing.append(view)
            else:
                targets.append(view)
                sources.append(grad)
        if targets:
            torch._foreach_copy_(targets, sources)
        if missing:
            torch._foreach_zero_(missing)

    def check_views(self, grads: bool = True) -> None:
        """Raise if something replaced a parameter's tensor (then the probe would read stale weights), or,
        with `grads`, a gradient's (for loops that rely on row 1 without gather_grads)."""
        base = self.buffer.untyped_storage().data_ptr()
        for i, p in enumerate(self.params):
            name = f"parameter '{self.names[i]}'" if self.names else f"parameter {i}"
            if p.untyped_storage().data_ptr() != base:
                raise RuntimeError(
                    f"{name} no longer lives in the flat buffer: something replaced its tensor (model.to(), "
                    f".half(), a new nn.Parameter); build FlatParameters after such changes"
                )
            if grads and (p.grad is None or p.grad.untyped_storage().data_ptr() != base):
                raise RuntimeError(
                    f"the gradient of {name} no longer lives in the flat buffer: zero gradients with "
                    f"FlatParameters.zero_grad() or optimizer.zero_grad(set_to_none=False)"
                )

    def flatten(self, point: Point) -> torch.Tensor:
        """A reference point as one vector in this buffer's order, on its device and in its dtype."""
        device, dtype = self.buffer.device, self.buffer.dtype
        if isinstance(point, nn.Module):
            point = point.state_dict()
        if isinstance(point, torch.Tensor):
            if point.numel() != self.numel:
                raise ValueError(f"reference has {point.numel()} parameters, the model {self.numel}")
            return point.detach().to(device=device, dtype=dtype).reshape(-1)
        if isinstance(point, Mapping):
            if self.names is None:
                raise ValueError(
                    "a reference point given as a module or state_dict needs the parameters' names: build "
                    "FlatParameters.of(model), or pass the reference as one flat tensor"
                )
            absent = [name for name in self.names if name not in point]
            if absent:
                raise KeyError(
                    f"the reference state_dict lacks trainable parameter(s) {absent[:5]}"
                    f"{' ...' if len(absent) > 5 else ''}: it must come from the same model"
                )
            tensors = [point[name] for name in self.names]
        elif isinstance(point, Sequence):
            tensors = list(point)
        else:
            raise TypeError(
                f"a reference point is a module, a state_dict, a list of tensors or a flat tensor, not "
                f"{type(point).__name__}"
            )
        if len(tensors) != len(self.params):
            raise ValueError(
                f"the reference has {len(tensors)} tensors, the model {len(self.params)} trainable parameters: "
                f"give them in model.parameters() order, frozen ones left out"
            )
        for i, (tensor, p) in enumerate(zip(tensors, self.params, strict=True)):
            if tensor.shape != p.shape:
                name = self.names[i] if self.names else f"parameter {i}"
                raise ValueError(
                    f"reference tensor {i} ({name}) has shape {tuple(tensor.shape)}, the model's {tuple(p.shape)}"
                )
        return torch.cat([t.detach().reshape(-1).to(device=device, dtype=dtype) for t in tensors])


def relative_drift(replayed: torch.Tensor, reference: torch.Tensor) -> float:
    """‖replayed − reference‖ / ‖reference‖ in float64: how far a replay's weights are from the
    reference's."""
    replayed, reference = replayed.double(), reference.to(replayed.device).double()
    return (torch.linalg.vector_norm(replayed - reference) / torch.linalg.vector_norm(reference)).item()
