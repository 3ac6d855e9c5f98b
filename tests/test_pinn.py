"""Mollified PINN trainer, autodiff baseline, device choice, progress and stop token.

Inputs are manufactured steady states: smooth fields (phi_h, phi_e) on a periodic box, with the
rate ratio that makes them an exact steady state computed spectrally, lambda =
(phi_h - lap(mu_d) / 2) / phi_e, then noise added to the fields.
"""

from dataclasses import dataclass, field

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_mollifier.inverse import InferenceConfig, StopToken, infer_rates  # noqa: E402
from napari_mollifier.inverse.autodiff import biharmonic, derivatives, laplacian  # noqa: E402
from napari_mollifier.inverse.device import (  # noqa: E402
    DeviceError,
    out_of_memory_as_error,
    resolve_device,
)
from napari_mollifier.inverse.pinn import PinnOptions, iter_pinn  # noqa: E402
from napari_mollifier.physics.params import ModelParams  # noqa: E402
from napari_mollifier.schema import to_dict  # noqa: E402

torch.set_num_threads(2)


@dataclass
class Fields:
    """ChromatinFields-like container (the attributes the PINN reads)."""

    phi_h: np.ndarray
    phi_e: np.ndarray
    phi_w: np.ndarray
    spacing: float
    mask: np.ndarray | None = None
    params: ModelParams = field(default_factory=ModelParams)
    pixel_size_nm: float | None = None
    origin_nm: tuple = (0.0, 0.0)

    def __post_init__(self):
        if self.mask is None:
            self.mask = np.ones(self.phi_h.shape, bool)


def _spectral(u, length, op):
    n = u.shape[0]
    k = 2 * np.pi * np.fft.fftfreq(n, length / n)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    mult = -k2 if op == "lap" else k2**2
    return np.real(np.fft.ifft2(np.fft.fft2(u) * mult))


def manufactured(n=64, length=4.0, seed=0, noise=0.05):
    """Smooth periodic fields, the exact steady-state ratio, and noisy copies of the fields."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.arange(n) * length / n, np.arange(n) * length / n, indexing="ij")

    def waves(amp, kmax):
        u = np.zeros((n, n))
        for _ in range(6):
            a, b = rng.integers(-kmax, kmax + 1, 2)
            u += np.cos(2 * np.pi * (a * x + b * y) / length + rng.uniform(0, 2 * np.pi))
        return amp * u / 6

    p = ModelParams()
    phi_h = 0.25 + waves(0.12, 2)
    phi_e = 0.25 + waves(0.01, 1)
    phi_d = phi_h - phi_e
    g = phi_h * (p.phi_max - phi_h) * (p.phi_max - 2 * phi_h)
    mu_d = g - phi_e - p.interface_length**2 * _spectral(phi_d, length, "lap")
    ratio = (phi_h - 0.5 * _spectral(mu_d, length, "lap")) / phi_e
    phi_h_noisy = phi_h + noise * phi_h.mean() * rng.standard_normal((n, n))
    phi_e_noisy = phi_e + noise * phi_e.mean() * rng.standard_normal((n, n))
    fields = Fields(phi_h_noisy, phi_e_noisy, 1 - phi_h_noisy - phi_e_noisy, length / n)
    return fields, ratio


def _small_config(options=None, **changes):
    """A short PINN config; keywords naming ``config.pinn`` fields go into that section."""
    pinn = dict(backbone="pirate", steps=40, patch_size=24, ensemble_size=2, learning_rate=2e-3)
    pinn.update(to_dict(options) if options is not None else {})
    top = dict(method="pinn", device="cpu", seed=0)
    for key, value in changes.items():
        (pinn if key in PinnOptions.__dataclass_fields__ else top)[key] = value
    return InferenceConfig(**top, pinn=PinnOptions(**pinn))


def _quality(estimate, truth, valid):
    m = valid & np.isfinite(estimate)
    r = np.corrcoef(estimate[m], truth[m])[0, 1]
    rel = np.linalg.norm(estimate[m] - truth[m]) / np.linalg.norm(truth[m])
    return r, rel


# --- device ---------------------------------------------------------------------------------
def test_resolve_device_cpu_and_auto_give_reasons():
    device, reason = resolve_device("cpu")
    assert device.type == "cpu" and "cpu" in reason
    device, reason = resolve_device("auto")
    if not torch.cuda.is_available():
        assert "CUDA not available" in reason
        if torch.version.cuda is None:
            assert "torch built without CUDA" in reason
    assert device.type in ("cpu", "cuda", "mps")


def test_unavailable_or_unknown_device_raises_value_error():
    with pytest.raises(ValueError, match="expected one of"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda")
    backend = getattr(torch.backends, "mps", None)
    if backend is None or not backend.is_available():
        with pytest.raises(ValueError, match="MPS is not available"):
            resolve_device("mps")


def test_out_of_memory_becomes_a_message_suggesting_a_smaller_patch():
    with pytest.raises(DeviceError, match="patch_size=32"):
        with out_of_memory_as_error("cuda", 64):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    with pytest.raises(RuntimeError, match="unrelated"):  # other errors pass through
        with out_of_memory_as_error("cuda", 64):
            raise RuntimeError("unrelated")


# --- autodiff vs mollifier --------------------------------------------------------------------
def test_autodiff_derivatives_match_finite_differences_of_a_polynomial():
    x = torch.rand(20, 2, dtype=torch.float64, requires_grad=True)
    u = x[:, 1] ** 4 + 2 * x[:, 0] ** 2 * x[:, 1] ** 2 + x[:, 0] ** 3
    lap = laplacian(u, x)
    bih = biharmonic(u, x)
    expected_lap = 12 * x[:, 1] ** 2 + 4 * x[:, 1] ** 2 + 4 * x[:, 0] ** 2 + 6 * x[:, 0]
    assert torch.allclose(lap, expected_lap)
    assert torch.allclose(bih, torch.full_like(bih, 24.0 + 16.0))
    d = derivatives(u, x, ("dx", "dy", "dxy"))
    assert torch.allclose(d["dxy"], 8 * x[:, 0] * x[:, 1])


def test_mollified_derivatives_of_a_network_equal_mollified_autodiff_derivatives():
    """d^k(eta * u) = eta * d^k u: the mollifier layer on network values must equal the
    mollified nested-autograd derivative of the same smooth network."""
    from napari_mollifier.mollifier import MollifierLayer
    from napari_mollifier.nets import build_backbone

    net = build_backbone(
        "pinn", width=16, depth=2, fourier_features=8, fourier_sigma=0.3, seed=1
    ).double()
    h, width = 0.05, 0.45
    layer = MollifierLayer(
        kernel="polynomial",
        width=width,
        spacing=(h, h),
        derivatives=("value", "laplacian", "biharmonic"),
        boundary="valid",
        dtype=torch.float64,
    )
    n = 40
    ys, xs = torch.meshgrid(torch.arange(n) * h, torch.arange(n) * h, indexing="ij")
    x = torch.stack([ys.reshape(-1), xs.reshape(-1)], 1).double().requires_grad_(True)
    u = net(x)[:, 0]
    lap_ad = laplacian(u, x).detach().reshape(1, 1, n, n)
    bih_ad = biharmonic(u, x).detach().reshape(1, 1, n, n)
    grid = u.detach().reshape(1, 1, n, n)
    mol = layer(grid)
    lap_ref = layer(lap_ad)["value"]
    bih_ref = layer(bih_ad)["value"]
    r = layer.radius_pixels[0]
    assert r == 8  # open support: 0.45 / 0.05 = 9 spacings, the edge sample is zero
    assert mol["laplacian"].shape == lap_ref.shape == (1, 1, n - 2 * r, n - 2 * r)
    rel_lap = (mol["laplacian"] - lap_ref).abs().max() / lap_ref.abs().max()
    rel_bih = (mol["biharmonic"] - bih_ref).abs().max() / bih_ref.abs().max()
    assert rel_lap < 2e-3
    assert rel_bih < 2e-2


# --- trainer ----------------------------------------------------------------------------------
def _run(fields, config, stop=None, stop_after=None):
    events = []
    for event in iter_pinn(fields, config, stop=stop):
        events.append(event)
        if stop_after is not None and event.step >= stop_after and stop is not None:
            stop.set()
    return events


def test_short_training_improves_loss_and_fills_every_map():
    fields, _ = manufactured(n=48)
    events = _run(fields, _small_config(steps=60, progress_interval_s=0.0))
    result = events[-1].result
    assert result is not None and all(e.result is None for e in events[:-1])
    rms = result.diagnostics["residual_rms"]
    assert rms["final"] < 0.9 * rms["warm_start"]  # the physics residual really goes down
    assert len(result.diagnostics["loss_history"]) >= 6
    shape = fields.phi_h.shape
    valid = result.valid_mask
    assert valid.shape == shape and valid.sum() > 0.2 * valid.size
    for name, arr in result.maps().items():
        assert arr.shape == shape, name
        assert np.isfinite(arr[valid]).all(), name
    assert np.isnan(result.ratio[~valid]).all()
    assert (result.ratio[valid] > 0).all()
    assert (result.uncertainty[valid] > 0).all()
    meta = result.metadata
    assert meta["device"] == "cpu" and "requested" in meta["device_reason"]
    assert meta["seed"] == 0 and meta["width"] > 0 and meta["ensemble_members"] == 2
    assert set(result.timings) >= {"train_s", "evaluate_s", "total_s"}
    # progress: monotone steps and elapsed time, width reported while training
    training = [e for e in events if e.message.startswith("training")]
    assert training and all("width" in e.extra for e in training)
    steps = [e.step for e in events]
    assert steps == sorted(steps) and events[-1].step == 60
    assert all(e.total == 60 for e in events)
    result.full_metadata()  # JSON-able


def test_same_seed_same_map_and_other_seed_other_map():
    fields, _ = manufactured(n=40, seed=2)
    cfg = _small_config(steps=12, ensemble_size=1)
    a = infer_rates(fields, cfg)
    b = infer_rates(fields, cfg)
    c = infer_rates(fields, cfg.replace(seed=5))
    assert np.array_equal(a.ratio, b.ratio, equal_nan=True)
    assert not np.allclose(a.ratio, c.ratio, equal_nan=True)
    assert a.uncertainty is None  # one member: no spread to report


def test_stop_token_returns_best_result_so_far():
    fields, _ = manufactured(n=40, seed=3)
    stop = StopToken()
    config = _small_config(steps=400, progress_interval_s=0.0)
    events = _run(fields, config, stop=stop, stop_after=5)
    result = events[-1].result
    assert result is not None
    assert result.diagnostics["stopped"] is True
    assert result.diagnostics["steps_done"] < 20
    assert "stopped" in events[-1].message
    assert np.isfinite(result.ratio[result.valid_mask]).all()
    # a token set before the start still gives a result (the warm start)
    stop2 = StopToken()
    stop2.set()
    result2 = infer_rates(fields, _small_config(steps=400), stop=stop2)
    assert result2.diagnostics["steps_done"] == 0
    assert np.isfinite(result2.ratio[result2.valid_mask]).all()


@pytest.mark.parametrize("backbone", ["pinn", "pinnsformer"])
def test_other_backbones_train(backbone):
    fields, _ = manufactured(n=40, seed=4)
    result = infer_rates(
        fields, _small_config(backbone=backbone, steps=6, ensemble_size=1, patch_size=16)
    )
    assert np.isfinite(result.ratio[result.valid_mask]).all()
    assert result.metadata["backbone"] == backbone


def test_autodiff_method_runs_and_records_itself():
    fields, _ = manufactured(n=40, seed=5)
    cfg = _small_config(
        method="pinn-autodiff", steps=3, ensemble_size=1, patch_size=8, mollifier_width=0.8
    )
    result = infer_rates(fields, cfg)
    assert result.metadata["method"] == "pinn-autodiff"
    assert result.diagnostics["options"]["fields_mode"] == "network"
    assert np.isfinite(result.ratio[result.valid_mask]).all()
    assert len(result.diagnostics["loss_history"]) >= 1


def test_second_equation_is_used_only_when_phi_e_is_observed():
    fields, _ = manufactured(n=40, seed=6)  # two channels: phi_e varies
    two = infer_rates(fields, _small_config(steps=4, ensemble_size=1))
    assert two.metadata["equations"] == "both"
    assert "residual_w" in two.diagnostics["final_losses"][0]
    uniform = Fields(
        fields.phi_h,
        np.full_like(fields.phi_e, fields.phi_e.mean()),
        1 - fields.phi_h - fields.phi_e.mean(),
        fields.spacing,
    )
    one = infer_rates(uniform, _small_config(steps=4, ensemble_size=1))
    assert one.metadata["equations"] == "rate"
    assert "residual_w" not in one.diagnostics["final_losses"][0]
    with pytest.raises(ValueError, match="pinn.equations"):
        _small_config(steps=1, equations="three")


def test_bad_inputs_raise_clear_value_errors():
    fields, _ = manufactured(n=24)
    bad = Fields(fields.phi_h, fields.phi_e[:10], fields.phi_w, fields.spacing)
    with pytest.raises(ValueError, match="one shape"):
        infer_rates(bad, _small_config())
    empty = Fields(
        fields.phi_h,
        fields.phi_e,
        fields.phi_w,
        fields.spacing,
        mask=np.zeros(fields.phi_h.shape, bool),
    )
    with pytest.raises(ValueError, match="mask is empty"):
        infer_rates(empty, _small_config())


def test_a_training_step_reads_from_the_device_once(monkeypatch):
    """On a GPU every float(tensor) waits for the device: after the first step (which fixes
    the residual scales) a step reads its loss and all loss terms in one transfer. (Adam's
    step counters are host tensors even on a GPU; its reads of them are not counted.)"""
    import sys

    from napari_mollifier.inverse.pinn.member import member_trainer
    from napari_mollifier.inverse.pinn.problem import PinnProblem
    from napari_mollifier.inverse.pinn.warm_start import warm_start
    from napari_mollifier.inverse.prepared import prepare_fields

    fields, _ = manufactured(n=40, seed=4)
    config = _small_config(steps=8, ensemble_size=1, patch_size=16)
    prepared = prepare_fields(fields, config)
    problem = PinnProblem(prepared, warm_start(prepared, config), config, config.pinn, "cpu")
    trainer = member_trainer(problem, config, config.pinn, 0, False, None)
    trainer.step(0, 8)
    reads = []
    for name in ("__float__", "__bool__", "item", "tolist", "cpu", "numpy"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if "torch/optim" not in caller.replace("\\", "/"):
                reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    for step in range(1, 6):
        losses = trainer.step(step, 8)
    monkeypatch.undo()
    assert reads == ["tolist"] * 5
    assert set(losses) == {"total", "residual", "residual_w", "data", "smooth"}
    assert all(isinstance(v, float) and np.isfinite(v) for v in losses.values())
