"""Batch faults: signals at any moment, non-regular inputs, read-only and full output folders.

Signals are sent to real ``python -m napari_mollifier.batch`` subprocesses. The moment "the
handlers are installed" is read from /proc (SigCgt), so that "during imports" is hit on purpose
and not by luck; before that moment the interpreter itself is starting (nothing of ours runs).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from napari_mollifier.batch import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OUTPUT,
    EXIT_TERMINATED,
    discover_inputs,
    main,
)
from napari_mollifier.inverse import ProgressEvent
from napari_mollifier.inverse.config import InferenceConfig

PIXEL_NM = 25.0
posix_only = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")


def _density(n=64, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    blobs = ndimage.gaussian_filter(rng.normal(size=(n, n)), 2.5)
    blobs = (blobs - blobs.min()) / np.ptp(blobs)
    return ndimage.gaussian_filter(np.where(np.hypot(yy, xx) < 0.42 * n, 0.25 + blobs, 0.0), 1.0)


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(2):
        tifffile.imwrite(folder / f"cell_{i}.tif", _density(seed=i).astype(np.float32))
    config = tmp_path / "fast.yaml"
    InferenceConfig(mollifier_width=0.7).save(config)
    return folder, config


def _args(folder, out, config, *extra):
    return [str(folder), "-o", str(out), "--config", str(config), "--method", "direct"] + [
        "--device",
        "cpu",
        "--pixel-size-nm",
        str(PIXEL_NM),
        *extra,
    ]


# --- signals ---------------------------------------------------------------------------------
def _handlers_installed(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    except OSError:
        pass
    return False


def _start(args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "napari_mollifier.batch", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _finish(proc, timeout=90):
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return out, err


@posix_only
@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGINT, EXIT_INTERRUPTED), (signal.SIGTERM, EXIT_TERMINATED)]
)
def test_signal_during_imports(inputs, tmp_path, signum, status):
    folder, config = inputs
    proc = _start(_args(folder, tmp_path / "out", config))
    deadline = time.monotonic() + 30
    while not _handlers_installed(proc.pid) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    proc.send_signal(signum)  # the engine's imports (numpy, the config, ...) are under way
    _, err = _finish(proc)
    assert proc.returncode == status, err
    assert "Traceback" not in err and "Error" not in err
    assert "interrupted" in err


@posix_only
@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGTERM, EXIT_TERMINATED), (signal.SIGINT, EXIT_INTERRUPTED)]
)
def test_signal_during_start_up_and_work(inputs, tmp_path, signum, status):
    folder, config = inputs
    for delay in (0.3, 1.5):  # start-up (torch, reading), then the work
        out_dir = tmp_path / f"out{delay}"
        proc = _start(_args(folder, out_dir, config))
        while not _handlers_installed(proc.pid) and proc.poll() is None:
            time.sleep(0.001)
        time.sleep(delay)
        proc.send_signal(signum)
        _, err = _finish(proc)
        if proc.returncode == EXIT_OK:  # the machine was fast: everything done already
            continue
        assert proc.returncode == status, err
        assert "Traceback" not in err
        if out_dir.exists():  # no partial outputs under their final names
            assert not [p for p in out_dir.rglob("*") if p.name.endswith(".tmp")]


@posix_only
def test_signal_after_the_last_file_never_kills_by_signal(inputs, tmp_path):
    folder, config = inputs
    for signum in (signal.SIGTERM,):  # SIGINT takes the same path (one run: keep it short)
        proc = _start(_args(folder / "cell_0.tif", tmp_path / "out", config))
        for line in proc.stdout:  # the summary's last line: the work is complete
            if line.startswith("config:"):
                break
        proc.send_signal(signum)
        _, err = _finish(proc)
        # 0 (the summary was printed: the run is complete) or the signal's status, never
        # death by signal (-15 / -2) and never a traceback
        assert proc.returncode in (EXIT_OK, EXIT_TERMINATED, EXIT_INTERRUPTED), err
        assert "Traceback" not in err


@posix_only
def test_a_signal_on_the_closing_ignore_call_is_absorbed(monkeypatch):
    """The race CI once hit: SIGTERM lands on ``ignore_from_now`` itself, after the summary."""
    from napari_mollifier.batch import __main__ as entry
    from napari_mollifier.batch import _signals, cli

    previous = {s: signal.getsignal(s) for s in _signals.SIGNALS}
    real_ignore, calls = _signals.ignore_from_now, []

    def ignore_hit_once():
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler raises on the next bytecode
            time.sleep(0.01)
        real_ignore()

    monkeypatch.setattr(cli, "main", lambda: EXIT_OK)
    monkeypatch.setattr(_signals, "_absorbing", False)  # both restored after the test
    monkeypatch.setattr(_signals, "_received", [])
    monkeypatch.setattr(_signals, "ignore_from_now", ignore_hit_once)
    try:
        assert entry._run() == EXIT_OK
        assert len(calls) == 2
        os.kill(os.getpid(), signal.SIGTERM)  # now ignored: neither raised nor fatal
        time.sleep(0.01)
        _signals._raise(signal.SIGTERM, None)  # the handler itself no longer raises
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# --- non-regular inputs ---------------------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_inputs_are_skipped_never_opened(inputs, tmp_path):
    folder, config = inputs
    fifo = folder / "pipe.csv"
    os.mkfifo(fifo)
    skipped = []
    jobs, _ = discover_inputs([folder, fifo], skipped=skipped)
    assert sorted(j.path.name for j in jobs) == ["cell_0.tif", "cell_1.tif"]
    assert [(p.name, kind) for p, kind in skipped] == [("pipe.csv", "a FIFO (named pipe)")] * 2
    # the CLI does not hang on it (a blocked open would hit the timeout) and says why
    proc = _start(_args(fifo, tmp_path / "out", config))
    _, err = _finish(proc, timeout=60)
    assert "skipping" in err and "pipe.csv: a FIFO" in err
    assert proc.returncode == 2 and "no inputs found" in err
    from napari_mollifier.io import FormatError, read_image, read_localisations

    for reader in (read_localisations, read_image):
        with pytest.raises(FormatError, match="regular"):
            reader(fifo)


# --- read-only and full output folders ------------------------------------------------------
def _fail_writes(monkeypatch, err_no, after=0):
    """Make every fsync after the first ``after`` ones fail with ``err_no`` (the write path of
    every output: tifffile is not fsynced, so also os.replace of finished files)."""
    calls = {"n": 0}
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] > after:
            raise OSError(err_no, os.strerror(err_no))
        return real_fsync(fd)

    def replace(src, dst, **kwargs):
        if calls["n"] > after:
            raise OSError(err_no, os.strerror(err_no), str(dst))
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)


def _one_line_error(capsys, out_dir, cause):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert str(out_dir) in lines[0] and cause in lines[0]
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("err_no", [errno.EROFS, errno.EACCES])
def test_read_only_output_folder_is_one_line_and_exit_3(
    inputs, tmp_path, capsys, monkeypatch, err_no
):
    folder, config = inputs
    out_dir = tmp_path / "out"
    _fail_writes(monkeypatch, err_no)
    assert main(_args(folder, out_dir, config)) == EXIT_OUTPUT
    _one_line_error(capsys, out_dir, os.strerror(err_no))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_really_read_only_folder(inputs, tmp_path, capsys):
    folder, config = inputs
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out_dir.chmod(0o555)
    try:
        assert main(_args(folder, out_dir, config)) == EXIT_OUTPUT
    finally:
        out_dir.chmod(0o755)
    _one_line_error(capsys, out_dir, "Permission denied")


def test_read_only_folder_with_resume_when_everything_is_complete(
    inputs, tmp_path, capsys, monkeypatch
):
    folder, config = inputs
    out_dir = tmp_path / "out"
    assert main(_args(folder, out_dir, config)) == EXIT_OK
    capsys.readouterr()
    _fail_writes(monkeypatch, errno.EROFS)
    assert main(_args(folder, out_dir, config, "--resume")) == EXIT_OUTPUT
    line = _one_line_error(capsys, out_dir, "Read-only file system")
    assert "effective_config.yaml" in line


def test_disk_full_during_the_run_stops_with_one_line(inputs, tmp_path, capsys, monkeypatch):
    folder, config = inputs
    out_dir = tmp_path / "out"
    _fail_writes(monkeypatch, errno.ENOSPC, after=1)  # the config is written, then full
    assert main(_args(folder, out_dir, config)) == EXIT_OUTPUT
    line = _one_line_error(capsys, out_dir, "No space left on device")
    assert "free some space" in line and "cell_0.tif" in line  # stopped at the first file
    # not complete (no sidecar: --resume redoes it), no temporary files left
    assert not (out_dir / "cell_0.json").exists()
    assert not [p for p in out_dir.rglob("*") if p.name.endswith(".tmp")]


# --- pixel sizes, empty results, changed inputs ------------------------------------------------
def _ome_density(path, pixel_nm, seed=0, n=64):
    meta = {"axes": "YX", "PhysicalSizeX": pixel_nm, "PhysicalSizeXUnit": "nm"}
    meta.update(PhysicalSizeY=pixel_nm, PhysicalSizeYUnit="nm")
    tifffile.imwrite(path, _density(n, seed).astype(np.float32), ome=True, metadata=meta)


def test_pixel_size_flag_never_replaces_the_files_own(inputs, tmp_path, capsys):
    _, config = inputs
    data = tmp_path / "own"
    data.mkdir()
    _ome_density(data / "own_px.ome.tif", 25.0)
    out_dir = tmp_path / "out"
    args = [str(data), "-o", str(out_dir), "--config", str(config), "--method", "direct"]
    assert main([*args, "--pixel-size-nm", "40"]) == EXIT_OK
    err = capsys.readouterr().err
    assert "warning:" in err and "own_px.ome.tif: the file's pixel size 25 nm" in err
    assert "ignored" in err
    meta = json.loads((out_dir / "own_px.json").read_text())
    assert meta["pixel_size_nm"] == pytest.approx(25.0)
    assert any("25 nm" in w for w in meta["batch"]["warnings"])
    # the same value, or none given: no warning
    assert main([*args, "--pixel-size-nm", "25", "--overwrite"]) == EXIT_OK
    assert "warning" not in capsys.readouterr().err


def _estimator_mapping_nothing(prepared, config, stop):
    """The direct estimator's result with every pixel invalid (a result with no valid pixel)."""
    import dataclasses

    from napari_mollifier.inverse.direct import estimate_direct

    result = estimate_direct(prepared, config.replace(method="direct"))
    nothing = np.zeros_like(result.valid_mask)
    ratio = np.full(result.ratio.shape, np.nan)
    yield ProgressEvent(1, 1, result=dataclasses.replace(result, ratio=ratio, valid_mask=nothing))


def test_no_valid_pixel_is_an_error_not_ok(tmp_path, capsys):
    from napari_mollifier.inverse.registry import _ESTIMATORS, register_estimator

    data = tmp_path / "small"
    data.mkdir()
    _ome_density(data / "tiny.ome.tif", 25.0, n=40)
    out_dir = tmp_path / "out"
    register_estimator("maps-nothing", _estimator_mapping_nothing)
    try:
        status = main([str(data), "-o", str(out_dir), "--method", "maps-nothing"])
    finally:
        _ESTIMATORS.pop("maps-nothing")
    assert status == 1
    err = capsys.readouterr().err
    assert "tiny.ome.tif: no valid pixel" in err and "Traceback" not in err
    assert not (out_dir / "tiny.ome.tif").exists() and not (out_dir / "tiny.json").exists()


def test_resume_redoes_an_input_whose_content_changed(inputs, tmp_path, capsys):
    folder, config = inputs
    out_dir = tmp_path / "out"
    assert main(_args(folder, out_dir, config)) == EXIT_OK
    meta = json.loads((out_dir / "cell_0.json").read_text())
    assert meta["batch"]["input_size"] == (folder / "cell_0.tif").stat().st_size
    assert len(meta["batch"]["input_sha256"]) == 64
    before = tifffile.imread(out_dir / "cell_0.ome.tif")
    capsys.readouterr()
    # same name, same size, other content
    tifffile.imwrite(folder / "cell_0.tif", _density(seed=7).astype(np.float32))
    assert (folder / "cell_0.tif").stat().st_size == meta["batch"]["input_size"]
    assert main(_args(folder, out_dir, config, "--resume")) == EXIT_OK
    err = capsys.readouterr().err
    assert "cell_0.tif changed since" in err and "sha256" in err and "redoing" in err
    rows = {r["input"].split("/")[-1]: r["status"] for r in _summary(out_dir)}
    assert rows == {"cell_0.tif": "ok", "cell_1.tif": "resumed"}
    assert not np.array_equal(tifffile.imread(out_dir / "cell_0.ome.tif"), before)
    # unchanged now: resumed without a warning
    assert main(_args(folder, out_dir, config, "--resume")) == EXIT_OK
    assert "changed since" not in capsys.readouterr().err


def _summary(out_dir):
    import csv

    with open(out_dir / "summary.csv", newline="") as fh:
        return list(csv.DictReader(fh))
