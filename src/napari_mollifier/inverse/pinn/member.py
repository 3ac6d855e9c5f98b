"""One ensemble member of the PINN: its seed, network, optimiser, patch draws and objective,
trained by the generic :class:`~.trainer.Trainer`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .losses import loss_terms
from .problem import PinnProblem
from .trainer import (
    CosineSchedule,
    EarlyStopping,
    NaNGuard,
    StopTokenCheck,
    Trainer,
    WeightAveraging,
)


def member_seed(config, member: int) -> int:
    return int(config.seed) + 1000 * member


def model_factory(config, member: int):
    """A function that builds the member's network with its zero output layer (so that step 0
    is exactly the warm start)."""
    import torch

    from ...nets import build_backbone

    seed = member_seed(config, member)
    backbone, preset = config.pinn.backbone, config.pinn.preset

    def factory():
        net = build_backbone(backbone, in_dim=2, out_dim=3, preset=preset, seed=seed)
        with torch.no_grad():
            net.head.weight.zero_()
            net.head.bias.zero_()
        return net

    return factory


class PinnObjective:
    """Weighted loss on a random patch: each residual relative to its size at the first step
    (the warm start), plus the data misfit and the smoothness prior."""

    def __init__(self, problem: PinnProblem, options, rng, autodiff: bool):
        self.problem, self.options, self.rng, self.autodiff = problem, options, rng, autodiff
        self.r0: float | None = None
        self.r0_w: float | None = None

    def __call__(self, model):
        top, left = self.problem.draw_patch(self.rng)
        t = loss_terms(self.problem, model, top, left, self.autodiff)
        if self.r0 is None:
            self.r0 = max(float(t.residual.detach()), 1e-12)
            if t.residual_w is not None:
                self.r0_w = max(float(t.residual_w.detach()), 1e-12)
        o = self.options
        loss = o.weight_residual * t.residual / self.r0 + o.weight_data * t.data
        loss = loss + o.weight_smooth * t.smooth
        if t.residual_w is not None:
            loss = loss + o.weight_residual_w * t.residual_w / self.r0_w
        # tensors: the trainer reads them after the step, in one transfer with the loss
        losses = {"total": loss, "residual": t.residual / self.r0}
        if t.residual_w is not None:
            losses["residual_w"] = t.residual_w / self.r0_w
        losses["data"] = t.data
        losses["smooth"] = t.smooth
        return loss, losses


@dataclass
class MemberResult:
    """What one trained member leaves: its weights and how training went."""

    state: dict | None
    model_factory: object
    weights_averaged: int = 0
    final_losses: dict = field(default_factory=dict)
    best_ema_loss: float | None = None


def member_trainer(problem: PinnProblem, config, options, member: int, autodiff: bool, stop):
    """A :class:`Trainer` for member ``member`` with the PINN's callbacks."""
    import torch

    factory = model_factory(config, member)
    model = factory().to(problem.device)
    rng = np.random.default_rng(member_seed(config, member))
    base_lr = float(config.pinn.learning_rate)
    optimizer = torch.optim.Adam(model.parameters(), lr=base_lr)
    callbacks = [
        CosineSchedule(base_lr, options.final_lr_fraction),
        WeightAveraging(options.average_from),
        NaNGuard(),
        EarlyStopping(options.patience),
        StopTokenCheck(stop),
    ]
    trainer = Trainer(model, optimizer, PinnObjective(problem, options, rng, autodiff), callbacks)
    trainer.model_factory = factory
    return trainer


def member_result(trainer: Trainer) -> MemberResult:
    averaging = trainer.callback(WeightAveraging)
    early = trainer.callback(EarlyStopping)
    return MemberResult(
        state=averaging.state(trainer.model),
        model_factory=trainer.model_factory,
        weights_averaged=averaging.count,
        final_losses=dict(trainer.last_losses),
        best_ema_loss=early.best_loss,
    )
