"""The PINN estimator as a generator: warm start, members trained in turn, tiled evaluation."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

from ..device import out_of_memory_as_error, resolve_device
from ..events import ProgressEvent
from ..heap import release_freed_memory, retain_freed_memory
from ..prepared import prepare_fields
from .assemble import UNCERTAINTY_SCALE, PinnRun, assemble
from .evaluate import evaluate_member
from .member import member_result, member_trainer
from .problem import PinnProblem
from .warm_start import warm_start

__all__ = ["UNCERTAINTY_SCALE", "iter_pinn"]


def iter_pinn(fields, config, stop=None) -> Iterator[ProgressEvent]:
    """Train the mollified PINN on ``fields`` and yield progress; the last event has ``.result``.

    Parameters
    ----------
    fields : PreparedFields or ChromatinFields
        phi_h, phi_e, phi_w (H, W), ``spacing`` (model units / pixel), optional ``mask``.
    config : InferenceConfig
        ``method`` "pinn" or "pinn-autodiff"; ``config.pinn`` (backbone, steps over the whole
        ensemble, learning rate, patch size, members and the tuned options), ``device``,
        ``seed``, ``mollifier_width``, ``kernel``, ``model``.
    stop : threading.Event or None
        Checked before every step; when set, training ends and the best members so far are
        evaluated into the result.
    """
    import torch

    t_start = time.perf_counter()
    autodiff = config.method == "pinn-autodiff"
    options = config.pinn
    if autodiff:
        options = dataclasses.replace(options, fields_mode="network")
    device, device_reason = resolve_device(config.device)
    prepared = prepare_fields(fields, config)
    total = int(options.steps)
    yield ProgressEvent(0, total, elapsed_s=0.0, message="warm start (direct estimator)")

    t0 = time.perf_counter()
    warm = warm_start(prepared, config)
    timings = {"warm_start_s": time.perf_counter() - t0}
    problem = PinnProblem(prepared, warm, config, options, device)
    run = PinnRun(prepared, config, options, warm, problem, [], [], {}, device, device_reason)
    run.timings = timings
    previous = _set_determinism(torch, device)
    if device.type == "cpu":
        retain_freed_memory()  # no page faults on every step's activations (glibc)
    try:
        with out_of_memory_as_error(device, options.patch_size):
            yield from _train_members(run, autodiff, stop, t_start)
            yield ProgressEvent(
                run.steps_done,
                total,
                elapsed_s=time.perf_counter() - t_start,
                message="evaluating tiles"
                + (f" (stopped at step {run.steps_done})" if run.stopped else ""),
                extra={"width": warm.width},
            )
            _evaluate(run)
    finally:
        _restore_determinism(torch, previous)
        release_freed_memory()
    timings["total_s"] = time.perf_counter() - t_start
    result = assemble(run)
    done = run.steps_done
    yield ProgressEvent(
        done,
        total,
        losses=run.members[-1].final_losses,
        elapsed_s=timings["total_s"],
        message=f"stopped at step {done}" if run.stopped else f"done ({done} steps)",
        result=result,
        extra={"width": warm.width},
    )


def _train_members(run: PinnRun, autodiff: bool, stop, t_start: float):
    """Generator: members in turn (each its share of the step budget), progress events."""
    config, options, problem = run.config, run.options, run.problem
    total = int(options.steps)
    members = max(1, int(options.ensemble_size))
    budgets = [total // members + (k < total % members) for k in range(members)]
    last_emit = 0.0
    t0 = time.perf_counter()
    for member in range(members):
        if run.stopped or budgets[member] == 0:
            break
        trainer = member_trainer(problem, config, options, member, autodiff, stop)
        perturb = options.perturb_data and members > 1
        problem.use_data(int(config.seed) + 7919 * (member + 1) if perturb else None)
        n_steps = budgets[member]
        for local, losses in enumerate(trainer.run(n_steps)):
            run.steps_done += 1
            if local % 10 == 0 or local == n_steps - 1:
                run.history.append({"member": member, "step": local, **losses})
            now = time.perf_counter()
            if now - last_emit >= options.progress_interval_s:
                last_emit = now
                yield ProgressEvent(
                    run.steps_done,
                    total,
                    losses=losses,
                    elapsed_s=now - t_start,
                    message=f"training member {member + 1}/{members}",
                    extra={"width": run.warm.width, "member": member, "lr": trainer.lr},
                )
        run.stopped = trainer.stop_reason == "stopped"
        run.members.append(member_result(trainer))
    run.timings["train_s"] = time.perf_counter() - t0
    problem.use_data(None)
    if not run.members:  # stopped before the first step: the warm start is the best so far
        untrained = member_trainer(problem, config, options, 0, autodiff, None)
        run.members.append(member_result(untrained))


def _evaluate(run: PinnRun) -> None:
    t0 = time.perf_counter()
    run.maps = [evaluate_member(run.problem, m.state, m.model_factory) for m in run.members]
    # the untrained network (zero output layer) is the warm start: its residual is the
    # reference for how much training reduced the physics residual
    run.warm_maps = evaluate_member(run.problem, None, run.members[0].model_factory)
    run.timings["evaluate_s"] = time.perf_counter() - t0


def _set_determinism(torch, device):
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
    return previous


def _restore_determinism(torch, previous) -> None:
    torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
