"""Smoke test of the paper benchmark (benchmarks/paper.py, issue 8).

1. The two residual branches agree: on a smooth network, the mollified residual ``eta * R``
   (derivatives moved onto the kernel) equals the nested-autodiff residual mollified afterwards,
   and the raw autodiff residual up to the mollifier's smoothing.
2. The smallest configuration of every problem trains a few steps and yields well-formed JSON,
   markdown tables and a figure (or a clear message when matplotlib is missing).
3. The simulated 4th-order data are cached on disk, keyed by every simulation parameter.

The simulated ``chromatin`` problem runs on a tiny simulation here (128^2, t_end 5, cached in
the test's tmp dir): these tests check plumbing, not accuracy.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def paper():
    return _load("paper")


#: 5 x 5 units on 128^2, 4x block average: the benchmark's spacing (0.156 units), 32 px per tile
TINY_SIM = dict(box_units=5.0, points=128, downsample=4, t_end=5.0)


@pytest.fixture
def tiny_sim(paper, tmp_path, monkeypatch):
    """Swap in a tiny default simulation; returns the cache folder (in tmp_path)."""
    probs = sys.modules["_paper_problems"]
    monkeypatch.setattr(probs, "DEFAULT_SIM", probs.SimSettings(**TINY_SIM))
    return tmp_path / "sims"


def _smooth_outputs(prob, coords):
    """A low-frequency random network, mapped to physically sensible fields and lambda."""
    from napari_mollifier.nets import build_backbone

    net = build_backbone(
        "pinn", in_dim=prob.ndim, out_dim=prob.n_fields + 1, seed=3, width=32, depth=3,
        fourier_features=16, fourier_sigma=0.25,
    ).double()  # fmt: skip
    raw = torch.tanh(net(coords))
    if prob.order == 4:
        fields = [0.1 + 0.15 * raw[:, 0], 0.5 + 0.1 * raw[:, 1]]
    else:
        fields = [raw[:, 0]]
    lam = torch.exp(0.3 * raw[:, -1]) if prob.positive else raw[:, -1]
    return fields, lam


@pytest.mark.parametrize(
    "name,n",
    [("langevin", 128), ("heat", 32), ("chromatin-manufactured", 32), ("chromatin", 32)],
)
def test_mollified_residual_matches_autodiff(paper, tiny_sim, name, n):
    probs = sys.modules["_paper_problems"]
    prob = probs.make_problem(name, n, noise=0.0, seed=0, sim_cache=tiny_sim)
    layers = prob.layers(torch.float64)
    known_moll = prob.mollify_known(layers, torch.float64)
    coords = torch.as_tensor(prob.coords, dtype=torch.float64).requires_grad_(True)
    known = {k: torch.as_tensor(v).reshape(-1) for k, v in prob.known.items()}
    fields, lam = _smooth_outputs(prob, coords)
    r_auto = prob.residual_autodiff(fields, lam, coords, known).detach()
    grids = torch.stack([f.detach() for f in fields]).reshape(prob.n_fields, *prob.shape)
    r_moll = prob.residual_mollifier(
        grids, lam.detach().reshape(prob.shape), layers, known_moll
    ).numpy()
    r_auto_grid = r_auto.reshape(prob.shape)
    # the autodiff residual, mollified afterwards: same kernel, derivatives not moved
    from napari_mollifier.mollifier import MollifierLayer

    smooth = MollifierLayer(
        ndim=prob.ndim, width=prob.width, spacing=prob.spacing, derivatives=("value",),
        boundary="valid", dtype=torch.float64,
    )  # fmt: skip
    r_auto_moll = smooth(r_auto_grid[None, None])["value"][0, 0].numpy()
    r_auto_c = prob.interior(r_auto_grid.numpy())
    assert r_moll.shape == r_auto_c.shape
    scale = np.linalg.norm(r_auto_c)
    assert scale > 0
    # moving derivatives onto the kernel vs differentiating the network: identical for the
    # linear residual (Langevin); products like lambda * lap(u) differ by the commutator
    # [eta*, lambda], small for a smooth lambda
    tight = {"langevin": 1e-3, "heat": 0.03}.get(name, 0.05)
    assert np.linalg.norm(r_moll - r_auto_moll) / scale < tight
    # and the raw pointwise residual, up to the mollifier's smoothing
    assert np.linalg.norm(r_moll - r_auto_c) / scale < 0.15
    # a wrong branch would not pass: the residual of the other problem's sign convention
    assert np.linalg.norm(-r_moll - r_auto_moll) / scale > 1.0
    if prob.order == 4:
        # the 4th-order term alone: biharmonic kernel on the grid vs four nested autograd passes
        from napari_mollifier.inverse.autodiff import biharmonic

        bih_auto = biharmonic(fields[0], coords).detach().reshape(prob.shape)
        bih_auto_moll = smooth(bih_auto[None, None])["value"][0, 0].numpy()
        bih_moll = layers["bih"](grids[0][None, None])["biharmonic"][0, 0].numpy()
        err = np.linalg.norm(bih_moll - bih_auto_moll) / np.linalg.norm(bih_auto_moll)
        assert err < 5e-3


def test_quick_smoke_all_problems(paper, tiny_sim, tmp_path, capsys):
    out = tmp_path / "paper.json"
    png = tmp_path / "paper.png"
    problems = ["langevin", "heat", "chromatin", "chromatin-manufactured"]
    results = paper.main(
        [
            "--quick", "--problems", *problems, "--backbones", "pinn",
            "--noise", "0.05", "--seeds", "0", "--steps", "2", "--grid", "24",
            "--no-scaling", "--in-process", "--out", str(out), "--plot", str(png),
            "--sim-cache", str(tiny_sim),
        ]
    )  # fmt: skip
    text = capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved["mode"] == "quick" and len(saved["cells"]) == 8
    for cell in saved["cells"]:
        assert "error" not in cell, cell
        assert cell["steps_done"] == 2 and cell["points"] in (24, 24 * 24)
        assert cell["time_s"] > 0 and np.isfinite(cell["final_loss"])
        assert -1.0 <= cell["pearson_r"] <= 1.0 and cell["rel_l2"] >= 0
    orders = sorted({c["order"] for c in saved["cells"]})
    assert orders == [1, 2, 4]
    # the simulated problem: simulated once (by the parent), read from the cache by every cell
    sim_cells = [c for c in saved["cells"] if c["problem"] == "chromatin"]
    assert len(saved["simulations"]) == 1 and not saved["simulations"][0]["cached"]
    for cell in sim_cells:
        info = cell["data_info"]
        assert info["source"] == "simulated" and info["simulation"]["cached"]
        assert set(info["reference_r"]) >= {"direct", "mass_balance", "pointwise_ratio"}
        assert 0 < cell["target_error"] < 0.25
    assert len(list(tiny_sim.glob("*.npz"))) == 1
    for header in (
        "### Matrix", "### Autodiff / mollifier", "### Against the paper", "### Data baselines",
    ):  # fmt: skip
        assert header in text
    # one ratio row per problem, each with both methods on the same step budget
    ratio_rows = [line for line in text.splitlines() if "| pinn | 5% |" in line and "x |" in line]
    assert len(ratio_rows) == 4
    assert "3300 s -> 335 s" in text
    # the paper comparison uses the simulated problem when it is present
    assert "ours: `chromatin`)" in text
    # nested 4th-order autodiff costs far more per step than one mollifier layer
    by = {(c["problem"], c["method"]): c["step_ms"] for c in results["cells"]}
    assert by[("chromatin", "autodiff")] > 2 * by[("chromatin", "mollifier")]
    assert png.exists() and png.stat().st_size < 200_000
    # the saved JSON reprints the same tables and redraws the figure, without training
    png.unlink()
    again = paper.main(["--from-json", str(out), "--plot", str(png)])
    assert again["cells"] == saved["cells"]
    assert capsys.readouterr().out.startswith(paper.report(saved))
    assert png.exists()


def test_plot_without_matplotlib(paper, tmp_path, monkeypatch, capsys):
    # None in sys.modules makes `import matplotlib` raise ImportError
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    png = tmp_path / "none.png"
    assert paper.plot({"cells": [], "scaling": []}, str(png)) is False
    assert not png.exists()
    assert "matplotlib is not installed" in capsys.readouterr().err


def test_simulation_cache_is_keyed_by_parameters(paper, tmp_path):
    probs = sys.modules["_paper_problems"]
    tiny = probs.SimSettings(**TINY_SIM)
    first = probs.simulated_steady_state(0, 1, tmp_path, settings=tiny)
    again = probs.simulated_steady_state(0, 1, tmp_path, settings=tiny)
    assert not first["report"]["cached"] and again["report"]["cached"]
    np.testing.assert_array_equal(first["phi_d"], again["phi_d"])
    np.testing.assert_array_equal(first["rate_ratio"], again["rate_ratio"])
    # any parameter change, or another seed, is another file
    longer = probs.SimSettings(**{**TINY_SIM, "t_end": 6.0})
    assert not probs.simulated_steady_state(0, 1, tmp_path, settings=longer)["report"]["cached"]
    assert not probs.simulated_steady_state(1, 1, tmp_path, settings=tiny)["report"]["cached"]
    assert len(list(tmp_path.glob("*.npz"))) == 3
    # the benchmark grid: block averages of the simulation, cropped, no inverse crime
    prob = probs._make_chromatin_simulated(24, 0.0, 0, 1.25, tmp_path, "cpu", tiny)
    assert prob.spacing == (tiny.spacing_units,) * 2 and prob.shape == (24, 24)
    coarse = first["phi_d"].reshape(32, 4, 32, 4).mean(axis=(1, 3))[:24, :24]
    np.testing.assert_allclose(prob.clean[0], coarse)
