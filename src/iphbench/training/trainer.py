"""Train one (model, view, fold) run (paper section 3.4): Adam, plateau LR, best validation IoU.

The run reads the lesion patches of its fold's training and validation subjects from the
patch store, cuts them into slices of its view, and trains with the Dice + focal loss.
After each epoch it scores the validation subjects (aggregate IoU over all their voxels at
threshold 0.5), steps ``ReduceLROnPlateau`` on the validation loss, keeps ``best.pt`` when
the validation IoU improves, and writes ``last.pt``, ``history.csv`` and ``status.json``.
Test subjects are never read. A run whose folder holds ``last.pt`` resumes after the last
finished epoch and ends with the same weights as a run that was never stopped (on CPU;
on CUDA up to the GPU's own non-determinism).

On CUDA the hot loop uses bf16 autocast, channels-last, optionally ``torch.compile``, data
resident on the GPU, and no host synchronisation inside an epoch.

Example:
    >>> result = train_run(store, folds, "unet", "2DCor", 0, "runs/unet/2DCor/fold0",
    ...                    ModelConfig(width=8), TrainConfig(epochs=3))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

import iphbench
from iphbench._files import atomic_write_json, atomic_write_text
from iphbench.config import ModelConfig, TrainConfig, config_hash
from iphbench.training import checkpoint as ckpt
from iphbench.training.data import (
    PatchSource,
    SliceSet,
    derive_seed,
    epoch_indices,
    load_view_slices,
    steps_per_epoch,
)
from iphbench.training.folds import fold_subjects
from iphbench.training.loss import DiceFocalLoss
from iphbench.views import check_view

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "val_dice", "val_iou", "lr", "seconds")


class RunConfigError(RuntimeError):
    """A run folder holds state made with different settings."""


class StopRun(Exception):
    """Raise from a ``progress_cb`` to stop a run after the current epoch's checkpoint."""


@dataclass
class EpochReport:
    """What ``progress_cb`` receives after each epoch."""

    model: str
    view: str
    fold: int
    epoch: int  # finished epochs, 1-based
    epochs: int  # maximum epochs
    train_loss: float
    val_loss: float
    val_dice: float
    val_iou: float
    best_val_iou: float
    best_epoch: int
    lr: float
    seconds: float


@dataclass
class RunResult:
    """Outcome of one run (also stored as ``done.json``)."""

    model: str
    view: str
    fold: int
    run_dir: str
    best_epoch: int
    best_val_iou: float
    best_val_dice: float
    epochs_run: int
    stopped_early: bool
    resumed_from: int  # finished epochs found in last.pt at start (0 = fresh)
    seconds: float  # wall time of this call
    device: str
    history: list[dict[str, float]] = field(default_factory=list)


# -- devices and precision ------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → first CUDA device if any, else CPU; otherwise ``torch.device(name)``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device is {name!r} but no CUDA device is visible; use 'auto' or 'cpu'")
    return dev


def resolve_amp(amp: str, device: torch.device) -> torch.dtype:
    """Compute dtype: ``auto`` = bf16 on CUDA, float32 on CPU."""
    if amp == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp32":
        return torch.float32
    raise ValueError(f"train.amp must be 'auto', 'bf16' or 'fp32', got {amp!r}")


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager[Any]:
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# -- the hot loop ----------------------------------------------------------------------------


@dataclass
class Engine:
    """Model, optimiser and loss with their precision settings: what one training step needs."""

    model: nn.Module  # the module whose state is saved
    forward: Callable[[Tensor], Tensor]  # model or its torch.compile'd wrapper
    optimizer: torch.optim.Optimizer
    loss_fn: DiceFocalLoss
    device: torch.device
    dtype: torch.dtype

    @classmethod
    def build(
        cls, model: nn.Module, train_cfg: TrainConfig, device: torch.device, dtype: torch.dtype
    ) -> Engine:
        cuda = device.type == "cuda"
        model = model.to(device)
        if cuda and train_cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        optimizer = torch.optim.Adam(model.parameters(), lr=train_cfg.lr, fused=True if cuda else None)
        forward: Callable[[Tensor], Tensor] = model
        if cuda and train_cfg.compile:
            forward = torch.compile(model)
        loss_fn = DiceFocalLoss(
            beta=train_cfg.dice_beta, alpha=train_cfg.focal_alpha, gamma=train_cfg.focal_gamma,
            alpha_on_negatives=train_cfg.focal_alpha_negatives,
        )  # fmt: skip
        return cls(model, forward, optimizer, loss_fn, device, dtype)

    def step(self, x: Tensor, y: Tensor) -> Tensor:
        """One optimisation step; returns the detached loss on the device (no host sync)."""
        with autocast(self.device, self.dtype):
            logits = self.forward(x)
        loss = self.loss_fn(logits, y)  # float32 reduction, outside autocast
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


def train_one_epoch(
    engine: Engine, data: SliceSet, batch_size: int, steps: int, seed: int, epoch: int
) -> Tensor:
    """One epoch of ``steps`` batches in the order fixed by ``(seed, epoch)``; mean loss on the device."""
    engine.model.train()
    order = epoch_indices(data.n, batch_size, steps, seed, epoch, data.index_device)
    b = min(batch_size, data.n)
    total = torch.zeros((), device=engine.device)
    for i in range(steps):
        x, y = data.batch(order[i * b : (i + 1) * b])
        total += engine.step(x, y)
    return total / steps


@torch.no_grad()
def evaluate(engine: Engine, data: SliceSet, batch_size: int) -> dict[str, float]:
    """Validation loss (of all slices as one set), Dice and IoU at threshold 0.5 over all voxels."""
    engine.model.eval()
    counts = None
    hard = torch.zeros(3, device=engine.device, dtype=torch.float64)  # tp, fp, fn
    for start in range(0, data.n, batch_size):
        x, y = data.chunk(start, min(start + batch_size, data.n))
        with autocast(engine.device, engine.dtype):
            logits = engine.forward(x)
        c = engine.loss_fn.counts(logits, y)
        counts = c if counts is None else counts + c
        pred = logits.float() > 0.0  # sigmoid(z) > 0.5
        ref = y.bool()
        hard += torch.stack([(pred & ref).sum(), (pred & ~ref).sum(), (~pred & ref).sum()]).double()
    assert counts is not None
    loss = engine.loss_fn.from_counts(counts)
    tp, fp, fn, val_loss = torch.cat([hard, loss.double().reshape(1)]).tolist()  # one sync
    denom = tp + fp + fn
    return {
        "val_loss": val_loss,
        "val_iou": tp / denom if denom > 0 else 1.0,
        "val_dice": 2 * tp / (2 * tp + fp + fn) if denom > 0 else 1.0,
    }


# -- the run ---------------------------------------------------------------------------------


def _run_settings(
    model_name: str,
    view: str,
    fold: int,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    train: list[str],
    val: list[str],
    recipe: str,
) -> dict[str, Any]:
    tc = asdict(train_cfg)
    tc.pop("device")  # where a run trains does not change what it trains
    tc["recipe"] = recipe  # this run's recipe (the study may list several)
    if recipe != "iphbench":
        tc.pop("iphbench")  # settings of another recipe do not change this run
    return {
        "model": model_name,
        "view": view,
        "fold": fold,
        "width": model_cfg.width,
        "model_kwargs": ckpt.model_kwargs(model_cfg, model_name),
        "pretrained": model_cfg.pretrained,
        "train": tc,
        "train_subjects": train,
        "val_subjects": val,
    }


def _open_store(store: PatchSource | str | Path) -> PatchSource:
    if isinstance(store, str | Path):
        from iphbench.preprocessing.store import PatchStore

        return PatchStore(store)
    return store


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _should_stop(
    history: list[dict[str, float]], best_epoch: int, epochs: int, patience: int
) -> tuple[bool, bool]:
    """(finished, stopped_early) after the epochs in ``history``."""
    done = len(history)
    if patience > 0 and done > 0 and done - best_epoch >= patience and done < epochs:
        return True, True
    return done >= epochs, False


@contextlib.contextmanager
def _timer() -> Iterator[Callable[[], float]]:
    t0 = time.perf_counter()
    yield lambda: time.perf_counter() - t0


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
        run_dir: the run's folder (``<study>/runs/<model>/<view>/fold<k>``).
        model_cfg: width, batch norm and extra model settings.
        train_cfg: epochs, lr, batch size, patience, loss parameters, seed, device, precision.
        progress_cb: called after each epoch; raising :class:`StopRun` in it stops the run cleanly
            (its checkpoint is already written, so a later call resumes).
        recipe: ``"paper"`` (exactly as published) or ``"iphbench"`` (``train_cfg.iphbench``).

    Returns:
        The run's :class:`RunResult`; if ``done.json`` exists the stored result is returned without training.

    Raises:
        RunConfigError: ``run_dir`` holds a ``last.pt`` or ``config.json`` made with other settings.
    """
    run_dir = Path(run_dir)
    check_view(view)
    if recipe != "paper":
        raise NotImplementedError(f"the {recipe!r} recipe is not implemented yet")
    done_path = run_dir / "done.json"
    if done_path.exists():
        import json

        stored = json.loads(done_path.read_text(encoding="utf-8"))
        return RunResult(**stored)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(train_cfg.device)
    dtype = resolve_amp(train_cfg.amp, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    train_subj = fold_subjects(folds_df, fold, "train")
    val_subj = fold_subjects(folds_df, fold, "val")
    settings = _run_settings(model_name, view, fold, model_cfg, train_cfg, train_subj, val_subj, recipe)
    settings_hash = config_hash(settings)
    _check_run_config(run_dir, settings, settings_hash)

    with _timer() as elapsed:
        source = _open_store(store)
        tr_img, tr_msk = load_view_slices(source, train_subj, view)
        va_img, va_msk = load_view_slices(source, val_subj, view)
        channels_last = device.type == "cuda" and train_cfg.channels_last
        train_data = SliceSet.build(tr_img, tr_msk, device, dtype, train_cfg.gpu_resident, channels_last)
        val_data = SliceSet.build(va_img, va_msk, device, dtype, train_cfg.gpu_resident, channels_last)
        log.info(
            "%s %s fold %d: %d train slices (%d subjects), %d val slices (%d subjects) on %s (%s), %.2fs to load",
            model_name, view, fold, train_data.n, len(train_subj), val_data.n, len(val_subj), device, dtype, elapsed(),
        )  # fmt: skip

    kwargs = ckpt.model_kwargs(model_cfg, model_name)
    torch.manual_seed(derive_seed(train_cfg.seed, 0x1417))
    model = ckpt.build_model(model_name, model_cfg.width, kwargs, pretrained=model_cfg.pretrained)
    engine = Engine.build(model, train_cfg, device, dtype)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        engine.optimizer, mode="min", factor=train_cfg.plateau_factor, patience=train_cfg.plateau_patience
    )
    history: list[dict[str, float]] = []
    best_iou, best_dice, best_epoch = -1.0, 0.0, 0
    last_path = run_dir / ckpt.LAST_NAME
    resumed_from = 0
    if last_path.exists():
        state = ckpt.load_checkpoint(last_path)
        if state.get("settings_hash") != settings_hash:
            raise RunConfigError(
                f"{last_path} was made with other settings; delete {run_dir} to retrain this run"
            )
        engine.model.load_state_dict(state["model"])
        engine.optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = list(state["history"])
        best_iou, best_dice, best_epoch = (
            float(state["best_val_iou"]),
            float(state["best_val_dice"]),
            int(state["best_epoch"]),
        )
        _set_rng_state(state["rng"])
        resumed_from = int(state["epoch"])
        log.info("resuming %s after epoch %d (best val IoU %.4f)", run_dir, resumed_from, best_iou)

    steps = steps_per_epoch(train_data.n, train_cfg.batch_size, train_cfg.steps_per_epoch)
    eval_batch = max(train_cfg.batch_size, 1)
    t_start = time.perf_counter()
    finished, stopped_early = _should_stop(
        history, best_epoch, train_cfg.epochs, train_cfg.early_stopping_patience
    )
    _write_status(run_dir, "running", history, train_cfg.epochs, best_iou)
    while not finished:
        epoch = len(history) + 1
        t0 = time.perf_counter()
        lr = float(engine.optimizer.param_groups[0]["lr"])
        train_loss_t = train_one_epoch(engine, train_data, train_cfg.batch_size, steps, train_cfg.seed, epoch)
        metrics = evaluate(engine, val_data, eval_batch)
        train_loss = float(train_loss_t)
        scheduler.step(metrics["val_loss"])
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            **metrics,
            "lr": lr,
            "seconds": time.perf_counter() - t0,
        }
        history.append({k: row[k] for k in HISTORY_COLUMNS})
        if metrics["val_iou"] > best_iou:
            best_iou, best_dice, best_epoch = metrics["val_iou"], metrics["val_dice"], epoch
            payload = ckpt.best_payload(
                engine.model, model_name, model_cfg.width, kwargs, view, fold, epoch, best_iou
            )
            ckpt.save_checkpoint(run_dir / ckpt.BEST_NAME, payload)
        ckpt.save_checkpoint(
            last_path,
            {
                "model": ckpt.cpu_state_dict(engine.model),
                "optimizer": engine.optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "best_val_iou": best_iou,
                "best_val_dice": best_dice,
                "best_epoch": best_epoch,
                "history": history,
                "rng": _rng_state(),
                "settings_hash": settings_hash,
            },
        )
        atomic_write_text(
            run_dir / "history.csv", pd.DataFrame(history, columns=list(HISTORY_COLUMNS)).to_csv(index=False)
        )
        _write_status(run_dir, "running", history, train_cfg.epochs, best_iou)
        finished, stopped_early = _should_stop(
            history, best_epoch, train_cfg.epochs, train_cfg.early_stopping_patience
        )
        if progress_cb is not None:
            progress_cb(
                EpochReport(
                    model_name, view, fold, epoch, train_cfg.epochs, train_loss, metrics["val_loss"],
                    metrics["val_dice"], metrics["val_iou"], best_iou, best_epoch, lr, row["seconds"],
                )
            )  # fmt: skip

    result = RunResult(
        model=model_name,
        view=view,
        fold=fold,
        run_dir=str(run_dir),
        best_epoch=best_epoch,
        best_val_iou=best_iou,
        best_val_dice=best_dice,
        epochs_run=len(history),
        stopped_early=stopped_early,
        resumed_from=resumed_from,
        seconds=time.perf_counter() - t_start,
        device=str(device),
        history=history,
    )
    _write_status(run_dir, "done", history, train_cfg.epochs, best_iou)
    atomic_write_json(done_path, asdict(result))
    return result


def _check_run_config(run_dir: Path, settings: dict[str, Any], settings_hash: str) -> None:
    import json

    path = run_dir / "config.json"
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old.get("settings_hash") != settings_hash and (run_dir / ckpt.LAST_NAME).exists():
            raise RunConfigError(
                f"{run_dir} holds a run made with other settings (see {path}); delete the folder to retrain it"
            )
    atomic_write_json(path, {**settings, "settings_hash": settings_hash, "iphbench": iphbench.__version__})


def _write_status(
    run_dir: Path, state: str, history: list[dict[str, float]], epochs: int, best_iou: float
) -> None:
    atomic_write_json(
        run_dir / "status.json",
        {
            "state": state,
            "epoch": len(history),
            "epochs": epochs,
            "best_val_iou": best_iou if best_iou >= 0 else None,
            "time": time.time(),
        },
    )


__all__ = [
    "Engine",
    "EpochReport",
    "RunConfigError",
    "RunResult",
    "StopRun",
    "evaluate",
    "resolve_amp",
    "resolve_device",
    "train_one_epoch",
    "train_run",
]
