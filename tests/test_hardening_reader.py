"""The napari reader function turns EVERY failure into one notification naming the file and
the cause; nothing escapes to napari (which would show a traceback)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

pytest.importorskip("napari")

from napari.utils.notifications import NotificationSeverity, notification_manager  # noqa: E402

from napari_mollifier import _reader  # noqa: E402

GOOD_CSV = "frame,x [nm],y [nm],uncertainty [nm]\n1,100,200,10\n2,150,260,12\n3,400,300,9\n"


def _errors_since(before):
    return [
        n for n in notification_manager.records[before:] if n.severity == NotificationSeverity.ERROR
    ]


def _read_with_failure(monkeypatch, tmp_path, exc):
    """Open a real, valid table while the io reader fails with ``exc`` (fault injection)."""
    from napari_mollifier import io as mio

    path = tmp_path / "cell_07.csv"
    path.write_text(GOOD_CSV)
    assert _reader.napari_get_reader(str(path)) is _reader.read_paths

    def failing(*args, **kwargs):
        raise exc

    monkeypatch.setattr(mio, "read_localisations", failing)
    before = len(notification_manager.records)
    layers = _reader.read_paths(str(path))  # must not raise
    return layers, _errors_since(before)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (MemoryError("Unable to allocate 3.5 GiB"), "not enough memory"),
        (RuntimeError("h5py internal failure"), "RuntimeError: h5py internal failure"),
        (struct.error("unpack requires a buffer of 8 bytes"), "error: unpack requires"),
        (KeyError("x"), "KeyError"),
        (ValueError("cells.csv: no x column"), "cells.csv: no x column"),
    ],
)
def test_every_failure_becomes_one_notification(monkeypatch, tmp_path, exc, expected):
    layers, errors = _read_with_failure(monkeypatch, tmp_path, exc)
    assert layers == [(None,)]  # napari's "handled, nothing to add"
    assert len(errors) == 1
    message = str(errors[0].message)
    assert "cell_07.csv" in message and expected in message
    assert "Traceback" not in message and "\n" not in message


def test_long_causes_are_shortened(monkeypatch, tmp_path):
    _, errors = _read_with_failure(monkeypatch, tmp_path, RuntimeError("x" * 100_000))
    assert len(str(errors[0].message)) < _reader.MAX_CAUSE_CHARS + 100


def test_one_bad_file_does_not_stop_the_others(monkeypatch, tmp_path):
    good = tmp_path / "good.csv"
    good.write_text(GOOD_CSV)
    bad = tmp_path / "bad.csv"
    bad.write_text("frame,x [nm],intensity\n1,10.5,20.25\n")  # no y column
    before = len(notification_manager.records)
    layers = _reader.read_paths([str(bad), str(good)])
    errors = _errors_since(before)
    assert len(errors) == 1 and "bad.csv" in str(errors[0].message)
    assert [kind for *_, kind in layers] == ["image", "points"]


def test_real_stray_localisation_is_a_notification_not_a_memory_error(tmp_path):
    # a real file with one localisation at 1e9 nm: the render refuses before allocating
    path = tmp_path / "stray.csv"
    path.write_text(GOOD_CSV + "4,1000000000,300,10\n")
    before = len(notification_manager.records)
    assert _reader.read_paths(str(path)) == [(None,)]
    (error,) = _errors_since(before)
    assert "stray.csv" in str(error.message) and "megapixels" in str(error.message)


def test_contrast_limits_of_large_image_use_a_subsample():
    import tracemalloc

    data = np.arange(16 * _reader._MAX_LIMIT_SAMPLES, dtype=np.float32).reshape(-1, 1024)
    tracemalloc.start()
    lo, hi = _reader.robust_limits(data)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < data.nbytes / 2  # no full-size float64 copy
    assert 0 <= lo < hi <= data.size
    assert hi == pytest.approx(0.995 * data.size, rel=1e-3)
