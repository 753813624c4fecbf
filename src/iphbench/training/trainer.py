"""Train one (model, view, fold) run with a recipe (paper section 3.4; docs/training.md).

A run reads its fold's training and validation subjects from the patch store (never its test
subjects), cuts their patches into slices of its view, and trains with the Dice + focal loss.
Each epoch ends with a validation; the checkpoint with the best selection score (the
recipe's: pooled validation IoU for ``paper``, mean per-subject Dice for ``iphbench``) is
``best.pt``. ``history.csv`` and ``status.json`` are rewritten after every epoch, ``last.pt``
every ``train.checkpoint_every`` epochs and at the end, in the background. A run whose folder
holds ``last.pt`` resumes after that epoch and ends with the same weights as a run that was
never stopped (on CPU; on CUDA up to the GPU's own non-determinism).

:func:`train_run` reads as its steps: open the run, load its data, build the engine, resume,
loop over epochs, finish.

Example:
    >>> result = train_run(store, folds, "unet", "2DCor", 0, "runs/unet/2DCor/fold0",
    ...                    ModelConfig(width=8), TrainConfig(epochs=3))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from iphbench._files import atomic_write_json
from iphbench.config import ModelConfig, PrepConfig, TrainConfig, config_hash
from iphbench.preprocessing.store import PatchStore
from iphbench.training import checkpoint as ckpt
from iphbench.training.compiled import compile_cache, resolve_compile
from iphbench.training.data import SliceSet, derive_seed, steps_per_epoch
from iphbench.training.engine import Engine, autocast, resolve_amp, resolve_device
from iphbench.training.folds import fold_subjects
from iphbench.training.recipe import RunRecipe, resolve_recipe
from iphbench.training.run_files import (
    HISTORY_COLUMNS,
    EpochReport,
    RunConfigError,
    RunProgress,
    RunResult,
    check_run_config,
    finished_result,
    last_state,
    run_settings,
    set_rng_state,
    write_history,
    write_status,
)
from iphbench.training.sampling import BalancedSampler, PatchSource, PermutationSampler, load_run_slices
from iphbench.training.validation import eval_batch_size, validate
from iphbench.views import check_view

log = logging.getLogger(__name__)


class StopRun(Exception):
    """Raise from a ``progress_cb`` to stop a run after the current epoch (it resumes from its last checkpoint)."""


@dataclass
class _Run:
    """The fixed facts of a run: where, what, how."""

    run_dir: Path
    model_name: str
    view: str
    fold: int
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    recipe: RunRecipe
    device: torch.device
    dtype: torch.dtype
    train_subjects: list[str]
    val_subjects: list[str]
    settings_hash: str


# -- the steps of a run -----------------------------------------------------------------------


def _open_run(
    store: PatchSource,
    folds_df: pd.DataFrame,
    model_name: str,
    view: str,
    fold: int,
    run_dir: Path,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    recipe_name: str,
) -> _Run:
    """Resolve device, precision, recipe and subjects; refuse a folder trained with other settings."""
    prep = getattr(store, "config", None)
    recipe = resolve_recipe(train_cfg, recipe_name, prep if isinstance(prep, PrepConfig) else PrepConfig())
    device = resolve_device(train_cfg.device)
    dtype = resolve_amp(train_cfg.amp, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    train_subj = fold_subjects(folds_df, fold, "train")
    val_subj = fold_subjects(folds_df, fold, "val")
    settings = run_settings(model_name, view, fold, model_cfg, train_cfg, train_subj, val_subj, recipe_name)
    digest = config_hash(settings)
    check_run_config(run_dir, settings, digest)
    return _Run(
        run_dir,
        model_name,
        view,
        fold,
        model_cfg,
        train_cfg,
        recipe,
        device,
        dtype,
        train_subj,
        val_subj,
        digest,
    )


def _load_data(
    store: PatchSource, run: _Run
) -> tuple[SliceSet, SliceSet, PermutationSampler | BalancedSampler]:
    """The run's training and validation slices on the device, and its batch sampler."""
    r, cfg = run.recipe, run.train_cfg
    t0 = time.perf_counter()
    tr = load_run_slices(
        store, run.train_subjects, run.view, r.skip_empty, r.context_patches_per_subject, seed=cfg.seed
    )
    va = load_run_slices(
        store,
        run.val_subjects,
        run.view,
        r.skip_empty,
        r.context_patches_per_subject,
        context_fraction=r.context_share if r.context_patches_per_subject else None,
        seed=cfg.seed,
    )
    channels_last = run.device.type == "cuda" and cfg.channels_last
    train_data = SliceSet.build(tr.images, tr.masks, run.device, run.dtype, cfg.gpu_resident, channels_last)
    val_data = SliceSet.build(
        va.images, va.masks, run.device, run.dtype, cfg.gpu_resident, channels_last, va.subject
    )
    sampler: PermutationSampler | BalancedSampler
    if r.balanced:
        sampler = BalancedSampler(
            tr, r.batch_size, r.foreground_share, r.context_share, cfg.seed, train_data.index_device
        )
    else:
        sampler = PermutationSampler(train_data.n, r.batch_size, cfg.seed, train_data.index_device)
    log.info(
        "%s %s fold %d (%s recipe): train %s of %d subjects, val %s of %d subjects, on %s (%s), %.2fs to load",
        run.model_name,
        run.view,
        run.fold,
        r.name,
        tr.summary(),
        len(run.train_subjects),
        va.summary(),
        len(run.val_subjects),
        run.device,
        run.dtype,
        time.perf_counter() - t0,
    )
    return train_data, val_data, sampler


def _build_engine(run: _Run) -> Engine:
    if resolve_compile(run.train_cfg.compile, run.device):
        # A process trains runs one after another (the in-process executor, a pool worker): forget
        # the last run's compiled code, guards and CUDA graphs, or dynamo's recompile limit (8 per
        # function) would send the 9th run eager; the on-disk cache keeps recompiling quick.
        torch._dynamo.reset()
    torch.manual_seed(derive_seed(run.train_cfg.seed, 0x1417))
    kwargs = ckpt.model_kwargs(run.model_cfg, run.model_name)
    model = ckpt.build_model(run.model_name, run.model_cfg.width, kwargs, pretrained=run.model_cfg.pretrained)
    engine = Engine.build(model, run.train_cfg, run.device, run.dtype, run.recipe)
    if engine.compile_mode is not None:
        log.info(
            "%s %s fold %d: torch.compile mode %s", run.model_name, run.view, run.fold, engine.compile_mode
        )
    return engine


def _resume(run: _Run, engine: Engine) -> RunProgress:
    """The progress stored in ``last.pt`` (engine state restored from it), or a fresh start."""
    path = run.run_dir / ckpt.LAST_NAME
    if not path.exists():
        return RunProgress()
    state = ckpt.load_checkpoint(path)
    if state.get("settings_hash") != run.settings_hash:
        raise RunConfigError(f"{path} was made with other settings; delete {run.run_dir} to retrain this run")
    engine.model.load_state_dict(state["model"])
    engine.optimizer.load_state_dict(state["optimizer"])
    engine.schedule.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    progress = RunProgress(
        history=list(state["history"]),
        best_score=float(state.get("best_score", state["best_val_iou"])),
        best_iou=float(state["best_val_iou"]),
        best_dice=float(state["best_val_dice"]),
        best_epoch=int(state["best_epoch"]),
        resumed_from=int(state["epoch"]),
    )
    log.info(
        "resuming %s after epoch %d (best %s %.4f)",
        run.run_dir,
        progress.resumed_from,
        run.recipe.select_on,
        progress.best_score,
    )
    return progress


def train_one_epoch(
    engine: Engine,
    data: SliceSet,
    sampler: PermutationSampler | BalancedSampler,
    steps: int,
    seed: int,
    epoch: int,
) -> torch.Tensor:
    """``steps`` optimiser steps in the order fixed by ``(seed, epoch)``; mean loss on the device.

    Nothing here waits for the GPU (no value is read back to the host): indices are drawn on the
    device, batches gathered there, the loss summed there (tests/training/test_no_sync.py).
    """
    engine.model.train()
    order = sampler.indices(epoch, steps)
    b = sampler.batch
    gen = None
    if engine.augmentation is not None:
        gen = torch.Generator(device=engine.device)
        gen.manual_seed(derive_seed(seed, epoch, 0xA06))
    total = torch.zeros((), device=engine.device)
    for i in range(steps):
        x, y = data.batch(order[i * b : (i + 1) * b])
        total += engine.step(x, y, gen)
    return total / max(steps, 1)


def _loop(
    run: _Run,
    engine: Engine,
    train_data: SliceSet,
    val_data: SliceSet,
    sampler: PermutationSampler | BalancedSampler,
    progress: RunProgress,
    progress_cb: Callable[[EpochReport], None] | None,
) -> bool:
    """Train and validate epoch after epoch until the recipe's end or early stopping; returns
    whether the run stopped early."""
    r = run.recipe
    one_pass = steps_per_epoch(train_data.n, r.batch_size, None)
    eval_batch = eval_batch_size(r.batch_size, val_data.n, engine)  # metrics do not depend on it
    finished, stopped_early = _should_stop(
        progress.history, progress.best_epoch, r.epochs, r.early_stopping_patience
    )
    write_status(run.run_dir, "running", progress, r.epochs)
    with ckpt.CheckpointWriter() as writer:
        while not finished:
            epoch = len(progress.history) + 1
            steps = r.steps_in_epoch(epoch, one_pass)
            t0 = time.perf_counter()
            lr = float(engine.optimizer.param_groups[0]["lr"])
            train_loss = float(train_one_epoch(engine, train_data, sampler, steps, run.train_cfg.seed, epoch))
            t_val = time.perf_counter()  # the float() above waited for the epoch's last step
            metrics = validate(engine, val_data, eval_batch)
            val_seconds = time.perf_counter() - t_val
            engine.schedule.after_validation(metrics["val_loss"])
            row = {"epoch": epoch, "step": progress.steps + steps, "slices": progress.slices + steps * sampler.batch,
                   "train_loss": train_loss, **metrics, "lr": lr, "seconds": time.perf_counter() - t0,
                   "val_seconds": val_seconds}  # fmt: skip
            progress.history.append({k: row[k] for k in HISTORY_COLUMNS})
            if metrics[r.selection_key] > progress.best_score:
                progress.best_score, progress.best_epoch = metrics[r.selection_key], epoch
                progress.best_iou, progress.best_dice = metrics["val_iou"], metrics["val_dice"]
                writer.save(run.run_dir / ckpt.BEST_NAME, _best_payload(run, engine, progress))
            finished, stopped_early = _should_stop(
                progress.history, progress.best_epoch, r.epochs, r.early_stopping_patience
            )
            if finished or epoch % run.train_cfg.checkpoint_every == 0:
                state = last_state(engine.model, engine.optimizer, engine.schedule.state_dict(), progress, epoch,
                                   run.settings_hash)  # fmt: skip
                writer.save(run.run_dir / ckpt.LAST_NAME, state)
            write_history(run.run_dir, progress)
            write_status(run.run_dir, "running", progress, r.epochs)
            if progress_cb is not None:
                progress_cb(EpochReport.of(run.model_name, run.view, run.fold, r.epochs, progress))
    return stopped_early


def _best_payload(run: _Run, engine: Engine, progress: RunProgress) -> dict[str, Any]:
    payload = ckpt.best_payload(
        engine.model, run.model_name, run.model_cfg.width, ckpt.model_kwargs(run.model_cfg, run.model_name),
        run.view, run.fold, progress.best_epoch, progress.best_iou,
    )  # fmt: skip
    return {
        **payload,
        "recipe": run.recipe.name,
        "select_on": run.recipe.select_on,
        "best_score": progress.best_score,
    }


def _finish(
    run: _Run, progress: RunProgress, stopped_early: bool, seconds: float, engine: Engine
) -> RunResult:
    result = RunResult(
        model=run.model_name,
        view=run.view,
        fold=run.fold,
        run_dir=str(run.run_dir),
        best_epoch=progress.best_epoch,
        best_val_iou=progress.best_iou,
        best_val_dice=progress.best_dice,
        epochs_run=len(progress.history),
        stopped_early=stopped_early,
        resumed_from=progress.resumed_from,
        seconds=seconds,
        device=str(run.device),
        history=progress.history,
        recipe=run.recipe.name,
        select_on=run.recipe.select_on,
        best_score=progress.best_score,
        steps=progress.steps,
        slices=progress.slices,
        compile=engine.compile_state,
    )
    best = run.run_dir / ckpt.BEST_NAME
    if not best.is_file():  # no validation score was ever a number: never mark such a run finished
        raise RuntimeError(
            f"run {run.run_dir} trained {len(progress.history)} epoch(s) but no validation score beat the start "
            f"(see its history.csv), so it has no {ckpt.BEST_NAME}; delete the folder and train it again"
        )
    ckpt.seal_checkpoint(best)  # best.pt is final: its .sha256 now lists exactly its digest
    write_status(run.run_dir, "done", progress, run.recipe.epochs)
    atomic_write_json(run.run_dir / "done.json", asdict(result))
    return result


def train_run(
    store: PatchSource | str | Path,
    folds_df: pd.DataFrame,
    model_name: str,
    view: str,
    fold: int,
    run_dir: str | Path,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    progress_cb: Callable[[EpochReport], None] | None = None,
    recipe: str = "paper",
) -> RunResult:
    """Train one (model, view, fold) run into ``run_dir``; resume it if ``last.pt`` is there.

    Args:
        store: a ``PatchStore`` (or its folder).
        folds_df: the folds table (``make_folds``); the run uses the ``train`` and ``val``
            subjects of ``fold`` and never its ``test`` subjects.
        model_name: registry name (unet, attention_unet, fpn, transunet).
        view: 2DAxi, 2DCor or 2DSag.
        fold: fold index.
        run_dir: the run's folder (``<study>/runs/<style>/<view>/fold<k>``).
        model_cfg: width, batch norm and extra model settings.
        train_cfg: the study's training settings (both recipes' and the device's).
        progress_cb: called after each epoch; raising :class:`StopRun` in it stops the run
            (a later call resumes from the last written ``last.pt``).
        recipe: ``"paper"`` (exactly as published) or ``"iphbench"`` (``train_cfg.iphbench``).

    Returns:
        The run's :class:`RunResult`; if ``done.json`` exists the stored result is returned without training.

    Raises:
        RunConfigError: ``run_dir`` holds a ``last.pt`` or ``config.json`` made with other settings.
    """
    run_dir = Path(run_dir)
    check_view(view)
    if (stored := finished_result(run_dir)) is not None:
        return stored
    run_dir.mkdir(parents=True, exist_ok=True)
    source = _open_store(store)
    run = _open_run(source, folds_df, model_name, view, fold, run_dir, model_cfg, train_cfg, recipe)
    train_data, val_data, sampler = _load_data(source, run)
    with compile_cache(train_cfg.compile_cache if resolve_compile(train_cfg.compile, run.device) else "none"):
        engine = _build_engine(run)
        progress = _resume(run, engine)
        t0 = time.perf_counter()
        stopped_early = _loop(run, engine, train_data, val_data, sampler, progress, progress_cb)
    return _finish(run, progress, stopped_early, time.perf_counter() - t0, engine)


# -- helpers ----------------------------------------------------------------------------------


def _open_store(store: PatchSource | str | Path) -> PatchSource:
    if isinstance(store, str | Path):
        return PatchStore(store)
    return store


def _should_stop(
    history: list[dict[str, float]], best_epoch: int, epochs: int, patience: int
) -> tuple[bool, bool]:
    """(finished, stopped_early) after the epochs in ``history``."""
    done = len(history)
    if patience > 0 and done > 0 and done - best_epoch >= patience and done < epochs:
        return True, True
    return done >= epochs, False


__all__ = [
    "Engine",
    "EpochReport",
    "RunConfigError",
    "RunResult",
    "StopRun",
    "autocast",
    "resolve_amp",
    "resolve_device",
    "train_one_epoch",
    "train_run",
]
