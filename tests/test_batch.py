"""Headless batch runner: folders with bad files, resume, atomic writes, Dask, Qt-free import."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage

import napari_mollifier.batch as batch
from napari_mollifier.batch import (
    CONFIG_NAME,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    SUMMARY_NAME,
    discover_inputs,
    main,
    process_file,
    run_batch,
)
from napari_mollifier.batch.pipeline import TMP_DIRNAME
from napari_mollifier.inverse.config import InferenceConfig

PIXEL_NM = 25.0
#: fixed mollifier width (model units): skips the automatic width ladder to keep tests fast;
#: >= the smallest width the 4th derivatives accept at 25 nm pixels and 300 nm / unit
WIDTH = 0.7
GOOD_STEMS = ("cell_a", "cell_b")


# --- small synthetic inputs -----------------------------------------------------------------
def nucleus_density(n: int = 72, seed: int = 0) -> np.ndarray:
    """(n, n) float32 chromatin density: a disc of smooth blobs (~150 nm) on an empty background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    inside = np.hypot(yy, xx) < 0.42 * n
    blobs = ndimage.gaussian_filter(rng.normal(size=(n, n)), 2.5)
    blobs = (blobs - blobs.min()) / np.ptp(blobs)
    density = np.where(inside, 0.25 + blobs, 0.0)
    return ndimage.gaussian_filter(density, 1.0).astype(np.float32)


def write_thunderstorm(path: Path, density: np.ndarray, pixel_nm: float, seed: int) -> int:
    """Poisson localisations drawn from ``density`` (one pixel = ``pixel_nm``), ThunderSTORM CSV."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(density / density.max() * 6.0)
    rows, cols = np.nonzero(counts)
    reps = counts[rows, cols]
    y_nm = (np.repeat(rows, reps) + rng.random(reps.sum())) * pixel_nm
    x_nm = (np.repeat(cols, reps) + rng.random(reps.sum())) * pixel_nm
    n = x_nm.size
    header = (
        '"id","frame","x [nm]","y [nm]","sigma [nm]","intensity [photon]",'
        '"offset [photon]","bkgstd [photon]","chi2","uncertainty [nm]"'
    )
    table = np.column_stack(
        [
            np.arange(1, n + 1),
            rng.integers(1, 500, n),
            x_nm,
            y_nm,
            np.full(n, 110.0),
            rng.uniform(500, 3000, n),
            np.full(n, 20.0),
            np.full(n, 5.0),
            np.ones(n),
            rng.uniform(8, 15, n),
        ]
    )
    np.savetxt(path, table, delimiter=",", header=header, comments="", fmt="%.6g")
    return n


@pytest.fixture
def input_dir(tmp_path: Path) -> Path:
    """Two good inputs (a density TIFF without pixel size, a ThunderSTORM CSV) + a corrupt TIFF."""
    folder = tmp_path / "data"
    folder.mkdir()
    tifffile.imwrite(folder / "cell_a.tif", nucleus_density(seed=1))
    write_thunderstorm(folder / "cell_b.csv", nucleus_density(seed=2), PIXEL_NM, seed=3)
    (folder / "broken.tif").write_bytes(b"this is not a TIFF file\x00\x01\x02" * 10)
    (folder / "notes.md").write_text("not an input: ignored")
    return folder


def cli_args(input_dir: Path, out_dir: Path, *extra: str) -> list[str]:
    config = out_dir.parent / "fast.yaml"
    if not config.exists():
        InferenceConfig(mollifier_width=WIDTH).save(config)
    return [
        str(input_dir),
        "-o",
        str(out_dir),
        "--config",
        str(config),
        "--method",
        "direct",
        "--device",
        "cpu",
        "--pixel-size-nm",
        str(PIXEL_NM),
        *extra,
    ]


def read_summary(out_dir: Path) -> list[dict]:
    with open(out_dir / SUMMARY_NAME, newline="") as fh:
        return list(csv.DictReader(fh))


def read_maps(path: Path) -> np.ndarray:
    return np.asarray(tifffile.imread(path), dtype=np.float32)


def output_files(out_dir: Path) -> set[str]:
    return {p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file()}


# --- the main contract ------------------------------------------------------------------------
def test_folder_with_corrupt_file(input_dir, tmp_path, capsys):
    out_dir = tmp_path / "out"
    status = main(cli_args(input_dir, out_dir, "--seed", "4"))
    captured = capsys.readouterr()
    assert status == EXIT_SOME_FAILED == 1

    # two complete outputs, the effective config and the summary: nothing else, no temp files
    expected = {f"{s}{suffix}" for s in GOOD_STEMS for suffix in (".ome.tif", ".json")}
    assert output_files(out_dir) == expected | {SUMMARY_NAME, CONFIG_NAME}
    assert not (out_dir / TMP_DIRNAME).exists()

    rows = {Path(r["input"]).name: r for r in read_summary(out_dir)}
    assert set(rows) == {"cell_a.tif", "cell_b.csv", "broken.tif"}
    assert rows["broken.tif"]["status"] == "error"
    assert "broken.tif" in rows["broken.tif"]["error"]
    assert rows["broken.tif"]["maps_path"] == ""
    for name, stem in (("cell_a.tif", "cell_a"), ("cell_b.csv", "cell_b")):
        row = rows[name]
        assert row["status"] == "ok" and row["error"] == ""
        assert Path(row["maps_path"]) == out_dir / f"{stem}.ome.tif"
        meta = json.loads((out_dir / f"{stem}.json").read_text())
        assert meta["config"]["seed"] == 4 and meta["config"]["method"] == "direct"
        assert meta["batch"]["input"] == str(input_dir / name)
        assert set(meta["batch"]["outputs"]) == {f"{stem}.ome.tif"}
        assert meta["batch"]["timings_s"]["infer"] > 0
        # the summary numbers are those of the written ratio map
        ratio = read_maps(out_dir / f"{stem}.ome.tif")[0]
        valid = ratio[np.isfinite(ratio)]
        assert valid.size == int(row["n_valid"]) > 100
        assert float(row["ratio_median"]) == pytest.approx(np.median(valid), rel=1e-4)
        assert float(row["ratio_mean"]) == pytest.approx(valid.mean(), rel=1e-4)

    # the CSV went through rendering at render_pixel_size_nm: its map has that pixel size
    meta_b = json.loads((out_dir / "cell_b.json").read_text())
    assert meta_b["pixel_size_nm"] == pytest.approx(InferenceConfig().render.pixel_size_nm)
    meta_a = json.loads((out_dir / "cell_a.json").read_text())
    assert meta_a["pixel_size_nm"] == pytest.approx(PIXEL_NM)

    effective = InferenceConfig.from_file(out_dir / CONFIG_NAME)
    assert effective.seed == 4 and effective.pixel_size_nm == PIXEL_NM
    assert "ignoring 1 file" in captured.err  # notes.md
    assert "[3/3]" in captured.err and "broken.tif" in captured.err
    assert str(out_dir / SUMMARY_NAME) in captured.out


def test_cli_subprocess_exit_status(input_dir, tmp_path):
    out_dir = tmp_path / "out"
    cmd = [sys.executable, "-m", "napari_mollifier.batch", *cli_args(input_dir, out_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_SOME_FAILED, proc.stderr
    assert "summary:" in proc.stdout and "cell_a.ome.tif" in proc.stdout
    assert "error" in proc.stderr and "broken.tif" in proc.stderr
    rows = read_summary(out_dir)
    assert [r["status"] for r in rows].count("ok") == 2

    # a second run without --resume / --overwrite refuses to clobber: usage error, nothing new
    before = {p: p.stat().st_mtime_ns for p in out_dir.iterdir()}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_USAGE == 2
    assert "--resume" in proc.stderr and "--overwrite" in proc.stderr
    assert {p: p.stat().st_mtime_ns for p in out_dir.iterdir()} == before


def test_all_good_inputs_exit_zero(input_dir, tmp_path):
    out_dir = tmp_path / "out"
    status = main(cli_args(input_dir / "cell_a.tif", out_dir))
    assert status == EXIT_OK == 0
    assert [r["status"] for r in read_summary(out_dir)] == ["ok"]


def test_usage_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("x")
    assert main([str(empty), "-o", str(tmp_path / "o")]) == EXIT_USAGE
    assert "no inputs found" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.csv"), "-o", str(tmp_path / "o")]) == EXIT_USAGE
    assert "does not exist" in capsys.readouterr().err
    assert main([str(empty), "-o", str(tmp_path / "o"), "--resume", "--overwrite"]) == EXIT_USAGE
    assert (
        main([str(empty), "-o", str(tmp_path / "o"), "--workers", "2", "--scheduler", "tcp://x:1"])
        == EXIT_USAGE
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("methd: direct\n")
    assert main([str(empty), "-o", str(tmp_path / "o"), "--config", str(bad)]) == EXIT_USAGE
    assert "methd" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# --- resume, overwrite, atomic writes -------------------------------------------------------
def test_resume_does_no_work(input_dir, tmp_path, monkeypatch, capsys):
    out_dir = tmp_path / "out"
    assert main(cli_args(input_dir, out_dir)) == EXIT_SOME_FAILED
    mtimes = {
        s: [(out_dir / f"{s}{x}").stat().st_mtime_ns for x in (".ome.tif", ".json")]
        for s in GOOD_STEMS
    }
    first = {r["input"]: r for r in read_summary(out_dir)}

    calls = []
    real = batch.runner.process_file

    def counting(path, *args, **kwargs):
        calls.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(batch.runner, "process_file", counting)
    capsys.readouterr()
    assert main(cli_args(input_dir, out_dir, "--resume")) == EXIT_SOME_FAILED
    assert calls == ["broken.tif"]  # only the failed input is tried again
    assert "2 already complete" in capsys.readouterr().err
    for s in GOOD_STEMS:
        assert [(out_dir / f"{s}{x}").stat().st_mtime_ns for x in (".ome.tif", ".json")] == mtimes[
            s
        ]
    second = {r["input"]: r for r in read_summary(out_dir)}
    for name, row in second.items():
        if row["status"] == "resumed":  # numbers copied from the sidecar
            assert row["ratio_median"] == first[name]["ratio_median"]
    assert sorted(r["status"] for r in second.values()) == ["error", "resumed", "resumed"]

    # a TIFF without its sidecar (run killed between the two renames) is redone
    (out_dir / "cell_a.json").unlink()
    calls.clear()
    assert main(cli_args(input_dir, out_dir, "--resume")) == EXIT_SOME_FAILED
    assert sorted(calls) == ["broken.tif", "cell_a.tif"]
    # a sidecar whose listed file has the wrong size is not complete either
    with open(out_dir / "cell_b.ome.tif", "ab") as fh:
        fh.write(b"\0")
    calls.clear()
    main(cli_args(input_dir, out_dir, "--resume"))
    assert sorted(calls) == ["broken.tif", "cell_b.csv"]


def test_overwrite_redoes_everything_with_same_maps(input_dir, tmp_path):
    out_dir = tmp_path / "out"
    main(cli_args(input_dir, out_dir))
    before = read_maps(out_dir / "cell_a.ome.tif")
    mtime = (out_dir / "cell_a.json").stat().st_mtime_ns
    assert main(cli_args(input_dir, out_dir, "--overwrite")) == EXIT_SOME_FAILED
    assert (out_dir / "cell_a.json").stat().st_mtime_ns > mtime
    np.testing.assert_array_equal(read_maps(out_dir / "cell_a.ome.tif"), before)


def test_interrupted_write_leaves_no_partial_file(input_dir, tmp_path, monkeypatch):
    """Ctrl-C after the maps were written to disk but before they were moved into place."""
    import napari_mollifier.io as mio

    real_write = mio.write_maps

    def write_then_interrupt(path, result):
        written = real_write(path, result)
        assert all(Path(p).exists() for p in written)
        raise KeyboardInterrupt

    monkeypatch.setattr(mio, "write_maps", write_then_interrupt)
    out_dir = tmp_path / "out"
    config = InferenceConfig(
        method="direct", device="cpu", pixel_size_nm=PIXEL_NM, mollifier_width=WIDTH
    )
    with pytest.raises(KeyboardInterrupt):
        process_file(input_dir / "cell_a.tif", out_dir, config)
    assert output_files(out_dir) == set()  # temp folder removed, nothing under a final name

    # through the runner: the summary is still written, with the interrupted input "not run"
    good = [input_dir / "cell_a.tif", input_dir / "cell_b.csv"]
    with pytest.raises(KeyboardInterrupt):
        run_batch(good, out_dir, config, stream=io.StringIO())
    assert output_files(out_dir) == {SUMMARY_NAME, CONFIG_NAME}
    assert [r["status"] for r in read_summary(out_dir)] == ["not run", "not run"]


# --- discovery and naming ---------------------------------------------------------------------
def test_discovery_names_and_exclusions(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / ".hidden").mkdir()
    for name in (
        "cell.csv",
        "cell.tif",
        "x.ome.tif",
        "sub/cell.csv",
        ".hidden/h.csv",
        ".dot.csv",
        "run_locs.yaml",
        "picasso_locs.hdf5",
    ):
        (data / name).write_text("x")
    out = data / "results"
    out.mkdir()
    (out / "old.tif").write_text("x")

    jobs, ignored = discover_inputs([data], exclude=[out])
    assert {j.path.name: j.stem for j in jobs} == {
        "cell.csv": "cell_csv",
        "cell.tif": "cell_tif",
        "x.ome.tif": "x",
        "picasso_locs.hdf5": "picasso_locs",
    }
    assert [p.name for p in ignored] == ["run_locs.yaml"]

    jobs, _ = discover_inputs([data], recursive=True, exclude=[out])
    stems = sorted(j.stem for j in jobs)
    assert stems == ["cell_csv", "cell_tif", "picasso_locs", "sub/cell", "x"]
    jobs, _ = discover_inputs([data, data / "cell.csv"], pattern="*.csv")
    assert [j.stem for j in jobs] == ["cell"]  # the same file twice is one job
    # the same name in two folders
    other = tmp_path / "other"
    other.mkdir()
    (other / "cell.csv").write_text("x")
    jobs, _ = discover_inputs([data / "cell.csv", other / "cell.csv"])
    assert [j.stem for j in jobs] == ["cell_csv", "cell_csv-2"]


def test_config_file_and_flags(tmp_path, input_dir):
    config_path = tmp_path / "run.yaml"
    InferenceConfig(
        seed=3, calibration={"phi_h_high": 0.6}, render={"pixel_size_nm": 30.0}, mollifier_width=0.9
    ).save(config_path)
    out_dir = tmp_path / "out"
    status = main(
        [
            str(input_dir / "cell_b.csv"),
            "-o",
            str(out_dir),
            "--config",
            str(config_path),
            "--seed",
            "9",
            "--device",
            "cpu",
        ]
    )
    assert status == EXIT_OK
    effective = InferenceConfig.from_file(out_dir / CONFIG_NAME)
    assert effective.seed == 9  # the flag wins
    assert effective.calibration.phi_h_high == 0.6 and effective.render.pixel_size_nm == 30.0
    meta = json.loads((out_dir / "cell_b.json").read_text())
    assert InferenceConfig.from_dict(meta["config"]) == effective
    assert meta["pixel_size_nm"] == pytest.approx(30.0)


# --- Dask ---------------------------------------------------------------------------------------
def test_local_cluster_matches_sequential(input_dir, tmp_path):
    pytest.importorskip("distributed")
    config = InferenceConfig(
        method="direct", device="cpu", pixel_size_nm=PIXEL_NM, seed=1, mollifier_width=WIDTH
    )
    quiet = io.StringIO()
    sequential = run_batch([input_dir], tmp_path / "seq", config, stream=quiet)
    parallel = run_batch([input_dir], tmp_path / "dask", config, workers=2, stream=quiet)
    assert sequential.exit_status == parallel.exit_status == EXIT_SOME_FAILED
    assert [r.status for r in parallel.reports] == [r.status for r in sequential.reports]
    assert [r.input for r in parallel.reports] == [r.input for r in sequential.reports]
    for stem in GOOD_STEMS:
        seq = read_maps(tmp_path / "seq" / f"{stem}.ome.tif")
        par = read_maps(tmp_path / "dask" / f"{stem}.ome.tif")
        assert np.isfinite(seq).any()
        # same inputs, config and seed; only BLAS/OpenMP thread counts differ between processes
        np.testing.assert_allclose(par, seq, rtol=1e-6, atol=1e-9, equal_nan=True)
    rows = read_summary(tmp_path / "dask")
    assert [r["status"] for r in rows].count("error") == 1
    assert all(Path(r["maps_path"]).parent == tmp_path / "dask" for r in rows if r["maps_path"])


def _worker_environment():
    import os

    import dask
    import torch

    return (
        torch.get_num_threads(),
        os.environ.get("MALLOC_TRIM_THRESHOLD_"),
        os.environ.get("MALLOC_ARENA_MAX"),
        dask.config.get("distributed.worker.profile.enabled"),
        dask.config.get("distributed.admin.tick.interval"),
    )


def test_local_workers_are_single_threaded_with_one_malloc_arena_and_no_profiler():
    """Dask's MALLOC_TRIM_THRESHOLD_ made single-threaded PINN workers 1.8x slower: not set;
    one malloc arena, no statistical profiler and a slow event-loop tick (batch/dask_run.py)."""
    distributed = pytest.importorskip("distributed")
    import os

    from napari_mollifier.batch.dask_run import _local_cluster

    # read before the start: Dask writes its pre-spawn variables into this process too
    expected_trim = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    arena_here = os.environ.get("MALLOC_ARENA_MAX")
    cluster, _, _ = _local_cluster(InferenceConfig(device="cpu"), io.StringIO(), 2)
    try:
        with distributed.Client(cluster) as client:
            seen = client.run(_worker_environment)
    finally:
        cluster.close()
    assert len(seen) == 2
    # this process untouched
    assert os.environ.get("MALLOC_TRIM_THRESHOLD_") == expected_trim
    assert os.environ.get("MALLOC_ARENA_MAX") == arena_here
    expected = (1, expected_trim, arena_here or "1", False, "1s")
    assert all(env == expected for env in seen.values()), seen


def test_a_failed_cluster_start_leaves_this_process_environment(monkeypatch):
    distributed = pytest.importorskip("distributed")
    import os

    from napari_mollifier.batch.dask_run import _local_cluster

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)

    def failing_cluster(**kwargs):
        os.environ["MALLOC_ARENA_MAX"] = "1"  # what the nanny does before spawning
        raise OSError("no free port")

    monkeypatch.setattr(distributed, "LocalCluster", failing_cluster)
    with pytest.raises(OSError, match="no free port"):
        _local_cluster(InferenceConfig(device="cpu"), io.StringIO(), 2)
    assert "MALLOC_ARENA_MAX" not in os.environ


def test_missing_dask_is_a_clear_usage_error(input_dir, tmp_path):
    code = (
        "import sys; sys.modules['distributed'] = None\n"
        "from napari_mollifier.batch import main\n"
        f"sys.exit(main({cli_args(input_dir, tmp_path / 'out', '--workers', '2')!r}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert "pip install" in proc.stderr and "dask" in proc.stderr


# --- Qt-free import -----------------------------------------------------------------------------
def test_import_is_qt_free():
    code = (
        "import sys\n"
        "import napari_mollifier.batch\n"
        "from napari_mollifier.batch import __main__\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('qtpy', 'napari', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6'))\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_progress_printer_lines():
    """Non-terminal streams get one line per 10 % of the step budget; one-shot methods none."""
    from napari_mollifier.batch.runner import ProgressPrinter
    from napari_mollifier.inverse.api import ProgressEvent

    stream = io.StringIO()
    printer = ProgressPrinter("cell.csv", stream)
    for step in range(0, 201):
        printer(
            ProgressEvent(
                step=step,
                total=200,
                losses={"loss": 1.0 / (step + 1)},
                elapsed_s=step * 0.01,
                message="training",
            )
        )
    printer.close()
    lines = stream.getvalue().splitlines()
    assert 10 <= len(lines) <= 12, lines
    assert lines[0].startswith("  0%") and lines[-1].startswith("100%")
    assert "step 200/200" in lines[-1] and "cell.csv" in lines[-1]
    one_shot = io.StringIO()
    ProgressPrinter("x", one_shot)(ProgressEvent(step=1, total=1))
    assert one_shot.getvalue() == ""


def test_sigterm_during_pinn_training_leaves_no_partial_output(input_dir, tmp_path):
    """A batch-queue kill (SIGTERM) mid-training: exit 143, summary says "not run", no files."""
    import signal
    import time

    out_dir = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "napari_mollifier.batch",
        str(input_dir / "cell_a.tif"),
        "-o",
        str(out_dir),
        "--method",
        "pinn",
        "--device",
        "cpu",
        "--pixel-size-nm",
        str(PIXEL_NM),
    ]
    config = tmp_path / "long.yaml"
    pinn = {"steps": 1_000_000, "ensemble_size": 1, "patch_size": 32}
    InferenceConfig(pinn=pinn, mollifier_width=WIDTH).save(config)
    cmd += ["--config", str(config)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        for line in proc.stderr:  # progress lines: "  0%  cell_a.tif: step 0/1000000 ..."
            if "step" in line or time.monotonic() > deadline:
                break
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert output_files(out_dir) == {SUMMARY_NAME, CONFIG_NAME}
    assert [r["status"] for r in read_summary(out_dir)] == ["not run"]


# --- console script, flags, sidecar as --config (issue 15) ------------------------------------
def test_version_and_pinn_flags_reach_the_config(capsys):
    from napari_mollifier import __version__
    from napari_mollifier.batch import build_parser, config_from_args

    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out
    args = build_parser().parse_args(
        "x -o y --steps 7 --backbone pinn --ensemble 2 --patch-size 24 "
        "--render-pixel-size-nm 15 --render-method histogram --seed 3".split()
    )
    config = config_from_args(args)
    pinn = config.pinn
    assert (pinn.steps, pinn.backbone, pinn.ensemble_size, pinn.patch_size) == (7, "pinn", 2, 24)
    assert (config.render.pixel_size_nm, config.render.method, config.seed) == (
        15.0,
        "histogram",
        3,
    )
    assert config_from_args(build_parser().parse_args("x -o y --device cuda:1".split())).device == (
        "cuda:1"
    )
    default = config_from_args(build_parser().parse_args(["x", "-o", "y"]))
    assert default == InferenceConfig(method="pinn")  # the PINN is the default, as in the widget


def test_sidecar_is_accepted_by_config(input_dir, tmp_path):
    """The JSON written next to a map reproduces its run: --config takes it as it is."""
    from napari_mollifier.batch import build_parser, config_from_args

    config = InferenceConfig(
        method="direct", mollifier_width=WIDTH, seed=5, render={"method": "histogram"}
    )
    config = config.replace(pixel_size_nm=PIXEL_NM)
    report = process_file(input_dir / "cell_a.tif", tmp_path / "out", config, "cell_a")
    assert report.status == "ok", report.error
    args = build_parser().parse_args([str(input_dir), "-o", "z", "--config", report.json_path])
    assert config_from_args(args) == config
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"config": {"methd": "pinn"}, "versions": {}}))
    with pytest.raises(ValueError, match="bad.json.*methd"):
        config_from_args(build_parser().parse_args(["x", "-o", "y", "--config", str(bad)]))


def test_quiet_prints_no_progress_and_verbose_is_accepted(input_dir, tmp_path, capsys):
    args = cli_args(input_dir, tmp_path / "q", "--quiet", "--method", "direct")
    assert main(args) == EXIT_SOME_FAILED  # broken.tif
    err = capsys.readouterr().err
    assert "broken.tif" in err and "cell_a" not in err and "input(s)" not in err


def test_z_stack_needs_z_plane_and_maps_the_chosen_projection(tmp_path, capsys):
    """A Z-stack TIFF is refused (naming --z-plane) and does not stop the batch; with
    ``--z-plane max`` it is mapped like its projection saved as a 2-D image, and the sidecar's
    config records the choice."""
    folder = tmp_path / "stacks"
    folder.mkdir()
    planes = np.stack([nucleus_density(seed=s) for s in (5, 6, 7)])
    tifffile.imwrite(folder / "stack.tif", planes, metadata={"axes": "ZYX"})
    tifffile.imwrite(folder / "projection.tif", planes.max(axis=0))
    out = tmp_path / "out_none"
    assert main(cli_args(folder, out)) == EXIT_SOME_FAILED
    rows = {Path(r["input"]).name: r for r in read_summary(out)}
    assert rows["projection.tif"]["status"] == "ok"
    assert rows["stack.tif"]["status"] == "error"
    assert "--z-plane" in rows["stack.tif"]["error"] and "3 planes" in rows["stack.tif"]["error"]

    out = tmp_path / "out_max"
    assert main(cli_args(folder, out, "--z-plane", "max")) == 0
    stack_maps, projection_maps = (read_maps(out / f"{n}.ome.tif") for n in ("stack", "projection"))
    np.testing.assert_array_equal(stack_maps, projection_maps)
    assert json.loads((out / "stack.json").read_text())["config"]["z_plane"] == "max"
    capsys.readouterr()
    assert main(cli_args(folder, tmp_path / "out_bad", "--z-plane", "median")) == EXIT_USAGE
    assert "--z-plane: expected a plane index" in capsys.readouterr().err
