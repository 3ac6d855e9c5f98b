"""Activations with a cheaper CPU kernel than PyTorch's own.

``torch.tanh`` on float32 CPU tensors costs about 4.5x ``torch.sigmoid`` (1.3-1.6 ms against
0.3 ms for a 10816 x 64 activation on a 2-core AMD EPYC, PyTorch 2.13): it was a quarter of the
default PINN's step. :func:`fast_tanh` computes ``tanh(x) = 2 sigmoid(2 x) - 1``: the same
function, to 2e-7 absolute (float32 rounding of the sigmoid; the relative error near 0 is
larger, which a dense layer downstream does not see), with PyTorch's fused ``tanh_backward``
as its derivative, itself differentiable, so nested autograd (``pinn-autodiff``) works.
"""

from __future__ import annotations

import torch


class _FastTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = torch.sigmoid(x * 2.0).mul_(2.0).sub_(1.0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


def fast_tanh(x: torch.Tensor) -> torch.Tensor:
    """``tanh(x)`` through the sigmoid kernel (see the module docstring)."""
    return _FastTanh.apply(x)
