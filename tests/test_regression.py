"""Refactorings must not change results: default direct and PINN maps on two seeded inputs agree
with the stored references (tests/data/regression, written from the code before the inverse-core
restructuring) to 1e-6 relative."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

HERE = Path(__file__).parent / "data" / "regression"
_spec = importlib.util.spec_from_file_location(
    "make_reference_maps", HERE / "make_reference_maps.py"
)
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)


@pytest.mark.parametrize("method", ref.METHODS)
@pytest.mark.parametrize("name", list(ref.INPUTS))
def test_maps_match_reference(name, method):
    import torch

    threads = torch.get_num_threads()
    try:
        maps = ref.compute(name, method)
    finally:
        torch.set_num_threads(threads)
    expected = np.load(ref.reference_path(name, method))
    assert set(maps) == set(expected.files)
    for key in expected.files:
        got, want = maps[key], expected[key]
        assert got.shape == want.shape, key
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=key)
        finite = np.isfinite(want)
        scale = np.max(np.abs(want[finite])) if finite.any() else 1.0
        np.testing.assert_allclose(
            got[finite],
            want[finite],
            rtol=1e-6,
            atol=1e-6 * scale,
            err_msg=f"{name}/{method}/{key}",
        )
