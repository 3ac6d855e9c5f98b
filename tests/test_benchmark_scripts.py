"""The small benchmark scripts run end to end on a tiny configuration (plumbing, not timing)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fft_crossover_table(capsys):
    script = _load("fft_crossover")
    rows = script.main(["--sizes", "16", "--taps", "3", "9", "--dtypes", "float64",
                        "--min-time", "0.001"])  # fmt: skip
    assert [(r["n"], r["taps"]) for r in rows] == [(16, 3), (16, 9)]
    for row in rows:
        assert row["direct_ms"] > 0 and row["fft_ms"] > 0
        assert row["max_rel_diff"] < 1e-12  # the two paths compute the same sums
    text = capsys.readouterr().out
    assert "| float64 | 16 | 9 |" in text and "FFT_MIN_TAPS" in text
    assert "float64: FFT faster at every size from" in text
