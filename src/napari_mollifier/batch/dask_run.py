"""Running a batch on Dask: a local cluster of worker processes or an existing scheduler."""

from __future__ import annotations

import os
from pathlib import Path

from ..inverse.config import InferenceConfig
from .discovery import BatchUsageError
from .faults import BatchOutputError
from .pipeline import STATUS_ERROR, FileReport, output_paths, process_file
from .report import say


def _gpu_count(config: InferenceConfig) -> int:
    """GPUs this machine would use for ``config`` (0 when the device is CPU/MPS or no CUDA)."""
    if config.device not in ("auto", "cuda"):
        return 0
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def worker_task(path: str, out_dir: str, config: dict, stem: str, n_local_gpus: int = 0):
    """The function Dask runs: :func:`process_file`, pinned to one GPU on a local cluster.

    With ``n_local_gpus`` > 0 the worker named ``i`` (LocalCluster names workers 0..N-1) sees
    only GPU ``i % n_local_gpus``; the choice is made before CUDA starts in that process.
    Nothing else depends on the worker: the seed is ``config["seed"]`` for every file.
    """
    if n_local_gpus > 0 and "_NAPARI_MOLLIFIER_GPU_PINNED" not in os.environ:
        from distributed import get_worker

        try:
            index = int(get_worker().name)
        except (TypeError, ValueError):
            index = 0
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index % n_local_gpus)
        os.environ["_NAPARI_MOLLIFIER_GPU_PINNED"] = "1"
    return process_file(path, out_dir, config, stem)


def run_dask(jobs, todo, out_dir, config, finished, stream, workers, scheduler) -> None:
    """Submit every job in ``todo`` to Dask and call ``finished(index, report)`` as they end."""
    client, cluster, n_local_gpus, resources = _connect(config, stream, workers, scheduler)
    out_abs = str(Path(out_dir).resolve())
    config_dict = config.to_dict()
    futures = {}
    try:
        for index in todo:
            job = jobs[index]
            future = client.submit(
                worker_task,
                str(job.path.resolve()),
                out_abs,
                config_dict,
                job.stem,
                n_local_gpus,
                key=f"napari-mollifier-{index}-{job.stem}",
                pure=False,
                resources=resources,
            )
            futures[future] = index
        from distributed import as_completed

        for future in as_completed(futures):
            index = futures[future]
            finished(index, _collect(future, jobs[index], out_dir, config))
    except KeyboardInterrupt:
        client.cancel(list(futures))
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _collect(future, job, out_dir, config) -> FileReport:
    try:
        report = future.result()
    except BatchOutputError:  # the output folder is read-only or full: stop the run
        raise
    except Exception as exc:  # a killed worker, a lost connection: report, go on
        return FileReport(
            input=str(job.path),
            status=STATUS_ERROR,
            output_stem=job.stem,
            method=config.method,
            seed=config.seed,
            error=f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:2000],
        )
    # report paths in the caller's terms, not the worker's absolute ones
    report.input = str(job.path)
    if report.maps_path:
        report.maps_path, report.json_path = (str(p) for p in output_paths(out_dir, job.stem))
    return report


def _connect(config, stream, workers, scheduler):
    """(client, local cluster or None, GPUs of the local machine, task resources or None)."""
    try:
        from distributed import Client
    except ImportError as exc:
        raise BatchUsageError(
            "--workers / --scheduler need Dask distributed, which is not installed; install it "
            "with: pip install 'napari-mollifier[dask]'  (or: pip install 'dask[distributed]')"
        ) from exc
    cluster = None
    try:
        if scheduler is None:
            cluster, n_local_gpus, resources = _local_cluster(config, stream, workers)
            client = Client(cluster)
        else:
            n_local_gpus, resources = 0, None
            try:
                client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise BatchUsageError(
                    f"cannot reach the Dask scheduler {scheduler}: {exc}"
                ) from exc
            info = client.scheduler_info()
            if any("GPU" in (w.get("resources") or {}) for w in info.get("workers", {}).values()):
                resources = {"GPU": 1}  # workers advertise GPUs: one task per GPU slot
        say(stream, f"Dask dashboard: {client.dashboard_link}")
    except BatchUsageError:
        if cluster is not None:
            cluster.close()
        raise
    except Exception as exc:
        if cluster is not None:
            cluster.close()
        raise BatchUsageError(f"cannot start the Dask cluster: {exc}") from exc
    return client, cluster, n_local_gpus, resources


#: Dask starts its workers with MALLOC_TRIM_THRESHOLD_=65536 (memory back to the OS sooner).
#: Setting it also freezes glibc's mmap threshold, so every tensor above 128 kB is a fresh
#: mmap and its pages are faulted in again: a single-threaded PINN ran 1.8x slower (36.8 s vs
#: 20.6 s for one 150-step sample run with the variable set by hand). Local workers keep the
#: allocator's defaults.
_TRIM_KEY = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
_ARENA_VARIABLE = "MALLOC_ARENA_MAX"

#: What a local cluster changes for its own worker processes (docs/benchmarks.md, "Batch
#: throughput"). A task runs in a worker thread, and a glibc thread arena grows in heaps of
#: at most 64 MB that are made and unmapped step after step: 4-5x the page faults of the main
#: thread per PINN file once warm; one arena (MALLOC_ARENA_MAX=1, read at process start) keeps the
#: main heap. The statistical profiler (every 10 ms) and the event-loop tick (every 20 ms) of
#: each worker, nanny and scheduler took 6 % of a core per worker and 6 % in this process,
#: beside a compute thread at 91 %: off, and 1 s (Dask's own test set-up: off, 500 ms). The
#: dashboard's profile page is empty for local workers as a result.
_LOCAL_CLUSTER_CONFIG = {
    _TRIM_KEY: None,
    f"distributed.nanny.pre-spawn-environ.{_ARENA_VARIABLE}": 1,
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
}


def _local_cluster(config, stream, workers):
    import dask
    from distributed import LocalCluster

    n_local_gpus = _gpu_count(config)
    n_workers, resources = workers, None
    if n_local_gpus:
        # one task per GPU at a time: one single-threaded worker per GPU
        n_workers = min(workers, n_local_gpus)
        resources = {"GPU": 1}
        say(stream, f"{n_local_gpus} GPU(s) found: {n_workers} worker(s), one per GPU")
    arena_before = os.environ.get(_ARENA_VARIABLE)
    try:
        with dask.config.set(_LOCAL_CLUSTER_CONFIG):
            cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                resources=resources,
            )
    finally:  # the nanny writes its pre-spawn variables into this process too: undo ours
        if arena_before is None:
            os.environ.pop(_ARENA_VARIABLE, None)
        else:
            os.environ[_ARENA_VARIABLE] = arena_before
    return cluster, n_local_gpus, resources
