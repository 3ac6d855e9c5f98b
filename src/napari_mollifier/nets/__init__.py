"""Backbones that map coordinates (model units) to raw fields: MLP (PINN), PirateNet, PINNsFormer.

Use :func:`build_backbone`::

    net = build_backbone("pirate", out_dim=3, seed=0)            # default, sized for a laptop
    net = build_backbone("pirate", preset="paper", out_dim=3)     # sizes of the papers
    net = build_backbone("pinn", width=128, depth=5)              # any size by keyword

Every backbone takes (N, in_dim) float coordinates and returns (N, out_dim); it exposes
``features(x)`` and ``head`` (the final ``nn.Linear``).
"""

from __future__ import annotations

from ..choices import BACKBONES as BACKBONE_NAMES
from .mlp import MLP, FourierFeatures
from .pinnsformer import PINNsFormer, Wavelet
from .pirate import PirateNet, RWFLinear

#: Sizes per preset and backbone. "default" is sized for the chromatin problem on a laptop CPU
#: (a few thousand points per step in tens of ms); "paper" reproduces the sizes of the
#: PirateNet / PINNsFormer papers (and a common PINN baseline) for GPU runs.
PRESETS: dict[str, dict[str, dict]] = {
    "default": {
        "pinn": {"width": 64, "depth": 4, "fourier_features": 32, "fourier_sigma": 1.0},
        "pirate": {"width": 64, "blocks": 2, "fourier_sigma": 1.0},
        "pinnsformer": {"d_model": 32, "heads": 2, "tokens": 5, "d_ff": 64, "hidden": 64},
    },
    "paper": {
        "pinn": {"width": 256, "depth": 5, "fourier_features": 128, "fourier_sigma": 1.0},
        "pirate": {"width": 256, "blocks": 3, "fourier_sigma": 1.0},
        "pinnsformer": {"d_model": 32, "heads": 2, "tokens": 5, "d_ff": 512, "hidden": 512},
    },
}


def build_backbone(
    name: str,
    in_dim: int = 2,
    out_dim: int = 3,
    preset: str = "default",
    seed: int | None = None,
    **sizes,
):
    """Build a backbone by name.

    Parameters
    ----------
    name : {"pinn", "pirate", "pinnsformer"}
    in_dim, out_dim : int
        Coordinate and output dimensions.
    preset : {"default", "paper"}
        Base sizes (see :data:`PRESETS`); keywords in ``sizes`` override them.
    seed : int or None
        Seeds weight initialisation and random Fourier frequencies (None: global RNG state).
    **sizes
        Backbone-specific sizes, e.g. ``width``, ``depth``, ``blocks``, ``fourier_sigma``,
        ``d_model``, ``heads``, ``tokens``, ``token_shift``.

    Returns
    -------
    torch.nn.Module
    """
    import torch

    if name not in BACKBONE_NAMES:
        raise ValueError(f"unknown backbone {name!r}: expected one of {BACKBONE_NAMES}")
    if preset not in PRESETS:
        raise ValueError(f"unknown backbone preset {preset!r}: expected one of {tuple(PRESETS)}")
    kwargs = {**PRESETS[preset][name], **sizes}
    generator = None
    if seed is not None:
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed + 7919)
    cls = {"pinn": MLP, "pirate": PirateNet, "pinnsformer": PINNsFormer}[name]
    if name != "pinnsformer":
        kwargs["generator"] = generator
    try:
        return cls(in_dim=in_dim, out_dim=out_dim, **kwargs)
    except TypeError as exc:
        raise ValueError(f"backbone {name!r}: bad size keyword ({exc})") from exc


def count_parameters(module) -> int:
    """Number of trainable scalars in ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = [
    "BACKBONE_NAMES",
    "FourierFeatures",
    "MLP",
    "PINNsFormer",
    "PRESETS",
    "PirateNet",
    "RWFLinear",
    "Wavelet",
    "build_backbone",
    "count_parameters",
]
