"""The trainer on a real prepared synthetic store with real registry models at small width (CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from iphbench.config import FoldsConfig, ModelConfig, TrainConfig
from iphbench.preprocessing.store import PatchStore
from iphbench.training import StopRun, load_model, make_folds, train_run
from iphbench.training.checkpoint import build_model
from iphbench.training.data import SliceSet, derive_seed
from iphbench.training.folds import fold_subjects
from iphbench.training.sampling import load_run_slices
from iphbench.training.trainer import Engine, RunConfigError, _should_stop
from iphbench.training.validation import validate


class RecordingStore:
    """A PatchStore that records which subjects were read."""

    def __init__(self, store: PatchStore) -> None:
        self.store = store
        self.read: set[str] = set()

    def patches(self, subjects: list[str], mode: str, **kw: Any) -> tuple[np.ndarray, np.ndarray, Any]:
        self.read.update(subjects)
        return self.store.patches(subjects, mode, **kw)


def _folds(store: PatchStore) -> pd.DataFrame:
    return make_folds(store.subjects_table, FoldsConfig(k=4, val_fraction=0.2, seed=0))


def test_trainer_learns_and_never_reads_test_subjects(prep_store: Path, tmp_path: Path) -> None:
    store = PatchStore(prep_store)
    folds = _folds(store)
    rec = RecordingStore(store)
    model_cfg = ModelConfig(width=8)
    train_cfg = TrainConfig(epochs=4, batch_size=32, steps_per_epoch=8, lr=2e-3, early_stopping_patience=0)

    # validation Dice of the untrained model (same seeded initialisation as the run)
    torch.manual_seed(derive_seed(train_cfg.seed, 0x1417))
    engine = Engine.build(build_model("unet", 8, {}), train_cfg, torch.device("cpu"), torch.float32)
    va = load_run_slices(store, fold_subjects(folds, 0, "val"), "2DCor")
    start = validate(engine, SliceSet.build(va.images, va.masks, torch.device("cpu"), torch.float32), 64)

    run_dir = tmp_path / "run"
    result = train_run(rec, folds, "unet", "2DCor", 0, run_dir, model_cfg, train_cfg)

    assert rec.read.isdisjoint(fold_subjects(folds, 0, "test"))
    assert rec.read == set(fold_subjects(folds, 0, "train")) | set(fold_subjects(folds, 0, "val"))
    assert result.epochs_run == 4
    assert result.best_val_dice > start["val_dice"] + 0.3, (start, result.history)
    assert result.best_val_dice > 0.5

    hist = pd.read_csv(run_dir / "history.csv")
    assert list(hist.columns) == [
        "epoch", "step", "slices", "train_loss", "val_loss", "val_dice", "val_iou", "val_subject_dice", "lr", "seconds",
        "val_seconds",
    ]  # fmt: skip
    assert (hist.val_seconds > 0).all() and (hist.val_seconds < hist.seconds).all()
    assert hist.step.tolist() == [8, 16, 24, 32] and hist.slices.tolist() == [256, 512, 768, 1024]
    assert hist.epoch.tolist() == [1, 2, 3, 4]
    assert hist.val_iou.max() == pytest.approx(result.best_val_iou)
    best = torch.load(run_dir / "best.pt", weights_only=True)
    assert {
        "model",
        "arch",
        "width",
        "model_kwargs",
        "view",
        "fold",
        "epoch",
        "val_iou",
        "in_channels",
        "classes",
    } <= set(best)
    assert (
        best["epoch"] == int(hist.val_iou.idxmax()) + 1 and best["arch"] == "unet" and best["view"] == "2DCor"
    )
    torch.load(run_dir / "last.pt", weights_only=True)
    for name in ("done.json", "config.json", "status.json"):
        assert (run_dir / name).is_file()

    model = load_model(run_dir)
    assert not model.training
    x = torch.from_numpy(va.images[:4].astype(np.float32)).unsqueeze(1)
    with torch.no_grad():
        assert model(x).shape == x.shape

    # a finished run is not trained again
    mtime = (run_dir / "last.pt").stat().st_mtime_ns
    again = train_run(rec, folds, "unet", "2DCor", 0, run_dir, model_cfg, train_cfg)
    assert again.best_val_iou == result.best_val_iou and (run_dir / "last.pt").stat().st_mtime_ns == mtime


def _tensors(path: Path, key: str) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)[key]


def test_kill_and_resume_gives_identical_weights(prep_store: Path, tmp_path: Path) -> None:
    """transunet has dropout, so this also checks the RNG state is restored."""
    store = PatchStore(prep_store)
    folds = _folds(store)
    args = dict(
        model_cfg=ModelConfig(width=4), train_cfg=TrainConfig(epochs=3, batch_size=16, steps_per_epoch=3)
    )
    straight = train_run(store, folds, "transunet", "2DAxi", 1, tmp_path / "a", **args)  # type: ignore[arg-type]

    def kill_after_first(report: Any) -> None:
        if report.epoch == 1:
            raise StopRun

    with pytest.raises(StopRun):
        train_run(store, folds, "transunet", "2DAxi", 1, tmp_path / "b", progress_cb=kill_after_first, **args)  # type: ignore[arg-type]
    assert not (tmp_path / "b" / "done.json").exists()
    assert torch.load(tmp_path / "b" / "last.pt", weights_only=True)["epoch"] == 1
    resumed = train_run(store, folds, "transunet", "2DAxi", 1, tmp_path / "b", **args)  # type: ignore[arg-type]

    assert resumed.resumed_from == 1 and resumed.epochs_run == straight.epochs_run == 3
    assert [h["val_iou"] for h in resumed.history] == [h["val_iou"] for h in straight.history]
    for name in ("best.pt", "last.pt"):
        a, b = _tensors(tmp_path / "a" / name, "model"), _tensors(tmp_path / "b" / name, "model")
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}:{k} differs after resume"
    opt_a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["optimizer"]["state"]
    opt_b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["optimizer"]["state"]
    assert all(torch.equal(opt_a[i]["exp_avg"], opt_b[i]["exp_avg"]) for i in opt_a)

    # resuming with other settings is refused
    (tmp_path / "b" / "done.json").unlink()
    with pytest.raises(RunConfigError, match="other settings"):
        train_run(
            store,
            folds,
            "transunet",
            "2DAxi",
            1,
            tmp_path / "b",
            ModelConfig(width=4),
            TrainConfig(epochs=3, lr=1e-2),
        )


def test_early_stopping_rule() -> None:
    hist = [{"val_iou": v} for v in (0.1, 0.3, 0.2, 0.2)]
    assert _should_stop(hist, best_epoch=2, epochs=10, patience=2) == (True, True)
    assert _should_stop(hist[:3], best_epoch=2, epochs=10, patience=2) == (False, False)
    assert _should_stop(hist, best_epoch=2, epochs=10, patience=0) == (False, False)
    assert _should_stop(hist, best_epoch=4, epochs=4, patience=2) == (True, False)


@pytest.mark.parametrize("negatives", ["one_minus", "same"])
def test_engine_builds_the_focal_alpha_convention_of_the_study(negatives: str) -> None:
    # train.focal_alpha_negatives: "same" is eq. 2 exactly as printed (α on both terms), "one_minus" the usual form
    cfg = TrainConfig(focal_alpha=0.25, focal_alpha_negatives=negatives)
    engine = Engine.build(torch.nn.Conv2d(1, 1, 1), cfg, torch.device("cpu"), torch.float32)
    assert engine.loss_fn.alpha_on_negatives == negatives
    logits, target = torch.full((1, 1, 2, 2), 3.0), torch.zeros(1, 1, 2, 2)  # confident false positives
    neg_weight = 0.25 if negatives == "same" else 0.75
    p = torch.sigmoid(logits)
    expected = float((-neg_weight * p**2 * torch.log(1 - p)).mean())
    assert float(engine.loss_fn.counts(logits, target).focal_sum / 4) == pytest.approx(expected, rel=1e-5)
