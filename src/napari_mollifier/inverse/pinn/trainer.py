"""A small generic trainer: an objective, an optimiser and composable callbacks.

The trainer knows nothing about chromatin: an objective is any callable ``objective(model) ->
(loss tensor, losses dict)``; 0-d tensors in the dict are read as floats after the step,
together with the loss, in one transfer (:func:`read_losses`). Everything around the
optimisation step is a callback:

- :class:`CosineSchedule` sets the learning rate before each step;
- :class:`WeightAveraging` keeps a running mean of the weights (stochastic weight averaging);
- :class:`NaNGuard` stops with a clear error when the loss is not finite;
- :class:`EarlyStopping` ends training when the smoothed loss stops improving;
- :class:`StopTokenCheck` ends training when a :class:`~napari_mollifier.inverse.StopToken` is
  set (the GUI's Stop button).

The library's PINN members (:mod:`.member`) and the benchmarks' problems train through it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence


class Callback:
    """Hooks around one optimisation step; every method may be left out."""

    def before_step(self, trainer: Trainer, step: int, n_steps: int) -> None:  # noqa: B027
        """Called before the objective is evaluated (e.g. to set the learning rate)."""

    def after_step(self, trainer: Trainer, step: int, n_steps: int, value: float) -> None:  # noqa: B027
        """Called after the optimiser step with the loss value of that step."""

    def stop_before(self, trainer: Trainer) -> str | None:
        """A reason to stop before the next step, or None."""
        return None

    def stop_after(self, trainer: Trainer) -> str | None:
        """A reason to stop after the step just taken, or None."""
        return None


class Trainer:
    """Runs ``n_steps`` of ``optimizer`` on ``objective(model)`` with ``callbacks``.

    Attributes
    ----------
    lr : float
        The learning rate of the last step.
    last_losses : dict
        The losses dict of the last step.
    stop_reason : str or None
        Why :meth:`run` ended early ("stopped", "converged", ...), None when it ran to the end.
    """

    def __init__(self, model, optimizer, objective: Callable, callbacks: Sequence[Callback] = ()):
        self.model, self.optimizer, self.objective = model, optimizer, objective
        self.callbacks = list(callbacks)
        self.lr = float(optimizer.param_groups[0]["lr"])
        self.last_losses: dict = {}
        self.stop_reason: str | None = None

    def set_lr(self, lr: float) -> None:
        self.lr = float(lr)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr

    def step(self, step: int, n_steps: int) -> dict:
        """One optimisation step; returns its losses dict (floats)."""
        for cb in self.callbacks:
            cb.before_step(self, step, n_steps)
        loss, losses = self.objective(self.model)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        value, losses = read_losses(loss, losses)
        for cb in self.callbacks:
            cb.after_step(self, step, n_steps, value)
        self.last_losses = losses
        return losses

    def run(self, n_steps: int) -> Iterator[dict]:
        """Generator: one losses dict per step; ends early when a callback says so."""
        self.stop_reason = None
        for step in range(n_steps):
            reason = _first(cb.stop_before(self) for cb in self.callbacks)
            if reason:
                self.stop_reason = reason
                return
            yield self.step(step, n_steps)
            reason = _first(cb.stop_after(self) for cb in self.callbacks)
            if reason:
                self.stop_reason = reason
                return

    def callback(self, kind: type) -> Callback | None:
        """The first callback of type ``kind``, or None."""
        return next((cb for cb in self.callbacks if isinstance(cb, kind)), None)


def read_losses(loss, losses: dict) -> tuple[float, dict]:
    """The loss and every 0-d tensor in ``losses`` as floats, read in one device-to-host
    transfer (other entries, e.g. whole maps, are passed on as they are).

    On a GPU each ``float(tensor)`` waits for the device; the objective therefore returns its
    loss terms as (detached) tensors and the trainer reads them all at once, after the step.
    """
    import torch

    names = [k for k, v in losses.items() if isinstance(v, torch.Tensor) and v.dim() == 0]
    parts = [loss.detach().reshape(())]
    parts += [losses[k].detach().to(parts[0].dtype) for k in names]
    values = torch.stack(parts).tolist()
    out = dict(losses)
    out.update(zip(names, values[1:]))
    return values[0], out


def _first(reasons) -> str | None:
    return next((r for r in reasons if r), None)


class CosineSchedule(Callback):
    """Cosine learning rate from ``base_lr`` down to ``final_fraction * base_lr``."""

    def __init__(self, base_lr: float, final_fraction: float):
        self.base_lr, self.final_fraction = float(base_lr), float(final_fraction)

    def before_step(self, trainer, step, n_steps):
        frac = step / max(1, n_steps - 1)
        fmin = self.final_fraction
        trainer.set_lr(self.base_lr * (fmin + (1 - fmin) * 0.5 * (1 + math.cos(math.pi * frac))))


class WeightAveraging(Callback):
    """Running mean of the weights from ``start_fraction`` of the steps on.

    Each patch pulls the network its own way; the mean over the second half of training
    cancels that jitter. :meth:`state` is the average (or the latest weights before it starts).
    """

    def __init__(self, start_fraction: float):
        self.start_fraction = float(start_fraction)
        self.average: dict | None = None
        self.count = 0

    def after_step(self, trainer, step, n_steps, value):
        if step / max(1, n_steps - 1) >= self.start_fraction:
            self._accumulate(trainer.model)

    def _accumulate(self, model) -> None:
        import torch

        with torch.no_grad():
            state = model.state_dict()
            if self.average is None:
                self.average = {k: v.detach().clone() for k, v in state.items()}
                self.count = 1
                return
            self.count += 1
            for key, value in state.items():
                if value.is_floating_point():
                    self.average[key] += (value - self.average[key]) / self.count

    def state(self, model) -> dict:
        return copy.deepcopy(self.average if self.average is not None else model.state_dict())


class NaNGuard(Callback):
    """Raise ``FloatingPointError`` naming the step when the loss is not finite."""

    def __init__(self, hint: str = "try a smaller learning_rate"):
        self.hint = hint

    def after_step(self, trainer, step, n_steps, value):
        if not math.isfinite(value):
            raise FloatingPointError(f"PINN loss became {value} at step {step}; {self.hint}")


class EarlyStopping(Callback):
    """Stop when the loss smoothed by an exponential moving average (``keep * ema + new *
    loss``) has not improved by ``min_improvement`` (relative) for ``patience`` steps."""

    def __init__(self, patience: int, min_improvement=1e-3, keep=0.95, new=0.05):
        self.patience, self.min_improvement = int(patience), min_improvement
        self.keep, self.new = keep, new
        self.ema: float | None = None
        self.best = math.inf
        self.since_best = 0

    def after_step(self, trainer, step, n_steps, value):
        self.ema = value if self.ema is None else self.keep * self.ema + self.new * value
        if self.ema < self.best * (1 - self.min_improvement):
            self.best = self.ema
            self.since_best = 0
        else:
            self.since_best += 1

    def stop_after(self, trainer):
        return "converged" if self.since_best >= self.patience else None

    @property
    def best_loss(self) -> float | None:
        return self.best if math.isfinite(self.best) else None


class StopTokenCheck(Callback):
    """Stop before the next step once ``token`` (a threading.Event) is set."""

    def __init__(self, token):
        self.token = token

    def stop_before(self, trainer):
        return "stopped" if self.token is not None and self.token.is_set() else None
