"""Where the runs of a study grid execute: ``local`` (this machine) or ``ray`` (a Ray cluster).

A run is a plain dict (:func:`job`) handed to :func:`execute_run`, which rebuilds everything
from the study folder, trains, and returns a plain dict. A failing run writes its traceback
to ``error.txt`` in its folder and returns ``status="failed"``; it never stops the others.

- ``local``: one run at a time on one device, in this process; with several visible GPUs (or
  ``runs_per_device`` > 1), ``runs_per_device`` worker processes per device, each taking the
  next run from a shared queue.
- ``ray``: each run is a Ray task holding ``1/runs_per_device`` of a GPU when the cluster has
  GPUs, else one CPU. ``address`` joins a running cluster (``ray start --head`` on one node,
  ``ray start --address HEAD:6379`` on the others); without it a local Ray instance is
  started for the study and stopped after it. The study folder must be on storage that every
  node sees at the same path (the tasks read ``prep/`` and write ``runs/`` there).

Several runs on one GPU (``runs_per_device``) pay when one run cannot fill it (small batches,
host work between epochs): the GPU time-slices between the runs' processes, so one run's gaps
are filled by another's kernels. Every run keeps its slices on the GPU, so memory is the limit.
All runs of a study compile into one cache (``<out>/cache/compile``, ``training/compiled.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch

from iphbench.config import StudyConfig
from iphbench.layout import StudyLayout
from iphbench.study.backends import backend_for
from iphbench.training.compiled import resolve_cache

log = logging.getLogger(__name__)

Job = dict[str, Any]
Outcome = dict[str, Any]
StartCb = Callable[[Job], None]
EndCb = Callable[[Job, Outcome], None]

EXECUTORS: tuple[str, ...] = ("local", "ray")


class ExecutorError(RuntimeError):
    """An executor cannot start (e.g. Ray is not installed or the cluster is unreachable)."""


def job(config_dict: dict[str, Any], style: str, view: str, fold: int, device: str | None = None) -> Job:
    """A picklable description of one run: the resolved study config plus (style, view, fold, device)."""
    return {"config": config_dict, "style": style, "view": view, "fold": int(fold), "device": device}


def execute_run(spec: Job) -> Outcome:
    """Train one run of a prepared study (store and folds.csv present); never raises for a run failure.

    The style's backend (``iphbench.study.backends``) trains it in its run folder.
    """
    cfg = StudyConfig.from_dict(spec["config"])
    if spec.get("cpu_threads"):
        torch.set_num_threads(int(spec["cpu_threads"]))
    layout = StudyLayout(cfg.out)
    run = layout.run(spec["style"], spec["view"], spec["fold"])
    run.dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        run.error.unlink()
    train_cfg = dataclasses.replace(cfg.train, compile_cache=resolve_cache(cfg.train.compile_cache, cfg.out))
    if spec.get("device") is not None:
        train_cfg = dataclasses.replace(train_cfg, device=spec["device"])
    t0 = time.perf_counter()
    base: Outcome = {
        "style": spec["style"],
        "view": spec["view"],
        "fold": spec["fold"],
        "run_dir": str(run.dir),
        "pid": os.getpid(),
        "started": time.time(),
        "torch_threads": int(torch.get_num_threads()),
    }
    try:
        trained = backend_for(spec["style"]).train_fold(
            cfg, spec["style"], spec["view"], spec["fold"], run, train_cfg
        )
    except Exception as exc:
        text = traceback.format_exc()
        run.error.write_text(text, encoding="utf-8")
        log.error("run %s failed: %s (traceback in %s)", run.dir, exc, run.error)
        return {
            **base,
            "status": "failed",
            "error": f"{type(exc).__name__}: {exc}",
            "seconds": time.perf_counter() - t0,
        }
    finally:
        _free_cuda()
    return {**base, "status": "done", "error": None, **trained, "seconds": time.perf_counter() - t0}


def _free_cuda() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _failed(spec: Job, message: str) -> Outcome:
    return {
        "style": spec["style"],
        "view": spec["view"],
        "fold": spec["fold"],
        "status": "failed",
        "error": message,
    }


# -- local ----------------------------------------------------------------------------------


def run_local(
    jobs: Sequence[Job], devices: Sequence[str], on_start: StartCb, on_end: EndCb, runs_per_device: int = 1
) -> list[Outcome]:
    """Run ``jobs`` on this machine: in this process for one device and one run at a time, else
    ``runs_per_device`` spawned worker processes per device pulling from one queue."""
    if runs_per_device < 1:
        raise ValueError(f"runs_per_device must be at least 1, got {runs_per_device}")
    slots = [d for d in devices for _ in range(runs_per_device)]
    if len(slots) <= 1:
        outcomes = []
        device = devices[0] if devices else None
        for spec in jobs:
            spec = {**spec, "device": device}
            on_start(spec)
            outcome = execute_run(spec)
            on_end(spec, outcome)
            outcomes.append(outcome)
        return outcomes

    todo: queue.Queue[Job] = queue.Queue()
    for spec in jobs:
        todo.put(spec)
    threads_per_cpu_run = cpu_threads_per_run(sum(torch_device_type(d) == "cpu" for d in slots))
    results: list[Outcome] = []
    lock = threading.Lock()
    ctx = multiprocessing.get_context("spawn")  # CUDA cannot be forked

    def worker(device: str) -> None:
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            while True:
                try:
                    spec = {**todo.get_nowait(), "device": device}
                except queue.Empty:
                    return
                if torch_device_type(device) == "cpu":
                    spec["cpu_threads"] = threads_per_cpu_run
                on_start(spec)
                try:
                    outcome = pool.submit(execute_run, spec).result()
                except Exception as exc:  # the worker process died (e.g. out of memory)
                    outcome = _failed(spec, f"worker process on {device} died: {exc}")
                on_end(spec, outcome)
                with lock:
                    results.append(outcome)

    threads = [
        threading.Thread(target=worker, args=(d,), name=f"iphbench-{d}-{i}", daemon=True)
        for i, d in enumerate(slots)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def torch_device_type(device: str | None) -> str:
    """``"cuda:1"`` → ``"cuda"``; None (the configured device) counts as ``"cpu"`` only when named so."""
    return (device or "auto").split(":")[0]


def cpu_threads_per_run(cpu_runs: int) -> int:
    """Torch threads for each of ``cpu_runs`` runs training at once on this machine's cores.

    Several processes each using every core oversubscribe them: measured on a 2-core machine, one
    training step of a width-8 U-Net took 0.23 s with one thread per process and 2.3 s with two
    while another training process ran (BENCHMARKS.md). So the cores are shared out.
    """
    return max(1, (os.cpu_count() or 1) // max(1, cpu_runs))


# -- ray ------------------------------------------------------------------------------------


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ExecutorError(
            "the ray executor needs Ray; install it with: pip install 'iphbench[ray]'"
        ) from None
    return ray


def run_ray(
    jobs: Sequence[Job], address: str | None, on_end: EndCb, runs_per_device: int = 1
) -> list[Outcome]:
    """Run each job as a Ray task (``1/runs_per_device`` GPU each when the cluster has GPUs, else one CPU)."""
    if runs_per_device < 1:
        raise ValueError(f"runs_per_device must be at least 1, got {runs_per_device}")
    ray = _import_ray()
    started_here = False
    if not ray.is_initialized():
        try:
            if address:
                ray.init(address=address, log_to_driver=True)
            else:
                ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
                started_here = True
        except Exception as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            raise ExecutorError(f"could not start or join {where}: {exc}") from exc
    try:
        gpus = float(ray.cluster_resources().get("GPU", 0))
        options: dict[str, Any] = {"num_cpus": 1, "max_retries": 0}
        if gpus >= 1:
            options["num_gpus"] = ray_gpu_share(runs_per_device)
        task = ray.remote(**options)(execute_run)
        log.info("ray: %d runs on a cluster with %s", len(jobs), ray.cluster_resources())
        pending: dict[Any, Job] = {}
        for spec in jobs:
            pending[task.remote(spec)] = spec  # the board shows it running once its status.json moves
        outcomes: list[Outcome] = []
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                spec = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # the task or its worker died
                    outcome = _failed(spec, f"ray task failed: {exc}")
                on_end(spec, outcome)
                outcomes.append(outcome)
        return outcomes
    finally:
        if started_here:
            ray.shutdown()


def ray_gpu_share(runs_per_device: int) -> float:
    """The fraction of a GPU one Ray task asks for, so ``runs_per_device`` tasks share a GPU."""
    return 1.0 / runs_per_device


def visible_devices(device: str = "auto") -> list[str]:
    """Devices for the local executor: the configured one, or every visible GPU, or the CPU."""
    if device != "auto":
        return [device]
    if torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu"]


__all__ = [
    "EXECUTORS",
    "ExecutorError",
    "execute_run",
    "job",
    "ray_gpu_share",
    "run_local",
    "run_ray",
    "visible_devices",
]
