"""The iphbench recipe item by item: each setting does what it says and switches off on its own."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from iphbench.config import FoldsConfig, IphbenchRecipe, ModelConfig, PrepConfig, TrainConfig
from iphbench.preprocessing.store import PatchStore
from iphbench.training import StopRun, make_folds, train_run
from iphbench.training.augment import Augmentation
from iphbench.training.recipe import resolve_recipe
from iphbench.training.sampling import BalancedSampler, PermutationSampler, RunSlices, load_run_slices
from iphbench.training.schedule import lr_factor

CPU = torch.device("cpu")


def _folds(store: PatchStore) -> pd.DataFrame:
    return make_folds(store.subjects_table, FoldsConfig(k=4, val_fraction=0.2, seed=0))


def _recipe(**kw: object) -> IphbenchRecipe:
    return replace(IphbenchRecipe(), **kw)  # type: ignore[arg-type]


# -- sampling ---------------------------------------------------------------------------------


def test_skip_empty_slices_drops_exactly_the_all_zero_slices(prep_store: Path) -> None:
    store = PatchStore(prep_store)
    subjects = store.subjects[:4]
    every = load_run_slices(store, subjects, "2DAxi")
    kept = load_run_slices(store, subjects, "2DAxi", skip_empty=True)
    zero = ~every.images.reshape(every.n, -1).any(1)
    assert zero.any(), "the test cohort should have padding slices"
    assert kept.n == every.n - int(zero.sum())
    assert kept.images.reshape(kept.n, -1).any(1).all()
    assert kept.masks.sum() == every.masks.sum()  # no lesion voxel is ever dropped


def test_context_patches_are_lesion_free_and_capped(prep_store: Path) -> None:
    store = PatchStore(prep_store)
    subjects = store.subjects[:4]
    data = load_run_slices(store, subjects, "2DCor", context_patches_per_subject=2)
    assert data.context.any() and not data.masks[data.context].any()
    per_patch = store.patch_size
    per_subject = np.bincount(data.subject[data.context], minlength=len(subjects)) // per_patch
    assert per_subject.max() <= 2
    none = load_run_slices(store, subjects, "2DCor", context_patches_per_subject=0)
    assert not none.context.any()
    # validation sets get a fixed share of context slices
    val = load_run_slices(store, subjects, "2DCor", True, 8, context_fraction=0.25)
    assert val.context.mean() == pytest.approx(0.25, abs=0.02)


def _toy(n_lesion: int, n_background: int, n_context: int) -> RunSlices:
    n = n_lesion + n_background + n_context
    masks = np.zeros((n, 4, 4), np.uint8)
    masks[:n_lesion, 1, 1] = 1
    context = np.zeros(n, bool)
    context[n_lesion + n_background :] = True
    return RunSlices(np.ones((n, 4, 4), np.float16), masks, np.zeros(n, np.int32), context, ["s"])


def test_balanced_batches_have_the_set_composition() -> None:
    data = _toy(10, 80, 30)
    sampler = BalancedSampler(data, 32, foreground_share=0.5, context_share=0.25, seed=0, device=CPU)
    idx = sampler.indices(epoch=1, steps=5).reshape(5, 32).numpy()
    lesion = data.masks.reshape(data.n, -1).any(1)
    assert (lesion[idx].sum(1) == 16).all() and (data.context[idx].sum(1) == 8).all()
    assert torch.equal(sampler.indices(1, 5), sampler.indices(1, 5))  # fixed by (seed, epoch)
    assert not torch.equal(sampler.indices(1, 5), sampler.indices(2, 5))
    # without context slices, their share goes to the lesion patches' background
    no_ctx = BalancedSampler(_toy(10, 80, 0), 32, 0.5, 0.25, 0, CPU)
    assert no_ctx.counts == {"lesion": 16, "context": 0, "background": 16}
    # both shares 0: uniform over all slices, as often as the paper's shuffle would draw them
    uniform = BalancedSampler(data, 32, 0.0, 0.0, 0, CPU).indices(1, 200).numpy()
    assert lesion[uniform].mean() == pytest.approx(10 / 120, abs=0.02)


def test_paper_sampler_is_a_shuffle_of_every_slice() -> None:
    order = PermutationSampler(50, 10, seed=3, device=CPU).indices(epoch=1, steps=5)
    assert sorted(order.tolist()) == list(range(50))


# -- augmentation -----------------------------------------------------------------------------


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(16, 1, 32, 32)
    x[:, :, 4:28, 6:26] = 0.2 + 0.6 * torch.rand(16, 1, 24, 20, generator=g)  # a "brain" on a zero background
    y = torch.zeros(16, 1, 32, 32, dtype=torch.uint8)
    y[:, :, 8:14, 9:20] = 1
    return x, y


def _only(**on: object) -> Augmentation:
    off = dict(flip=False, rotate_deg=0.0, scale=0.0, hu_offset=0.0, hu_scale=0.0, gamma=0.0, noise_hu=0.0,
               blur_sigma=0.0, p=1.0)  # fmt: skip
    return Augmentation(hu_per_unit=130.0, hu_min=-30.0, **{**off, **on})  # type: ignore[arg-type]


def test_every_augmentation_off_leaves_the_batch_unchanged() -> None:
    x, y = _batch()
    gx, gy = _only()(x, y, torch.Generator().manual_seed(0))
    assert torch.equal(gx, x) and torch.equal(gy, y)
    assert not _only().enabled


def test_flips_move_image_and_mask_together() -> None:
    x, y = _batch()
    gx, gy = _only(flip=True)(x, y, torch.Generator().manual_seed(1))
    flipped = 0
    for i in range(len(x)):
        candidates = [(x[i], y[i]), (x[i].flip(-1), y[i].flip(-1)), (x[i].flip(-2), y[i].flip(-2)),
                      (x[i].flip(-1).flip(-2), y[i].flip(-1).flip(-2))]  # fmt: skip
        match = [
            k for k, (cx, cy) in enumerate(candidates) if torch.equal(gx[i], cx) and torch.equal(gy[i], cy)
        ]
        assert match, f"slice {i} is not a flip of its input"
        flipped += match[0] != 0
    assert 0 < flipped < len(x)


def test_rotation_and_zoom_keep_the_mask_binary_and_on_the_image() -> None:
    x, y = _batch()
    x = y.float() * 0.7  # an image that is its own mask: after the warp both must still agree
    gx, gy = _only(rotate_deg=30.0, scale=0.2)(x, y, torch.Generator().manual_seed(2))
    assert set(gy.unique().tolist()) <= {0, 1} and gy.dtype == torch.uint8
    assert not torch.equal(gy, y)
    inside = gx > 0.35  # the bilinear image, thresholded half-way, is the nearest-neighbour mask
    agree = (inside == gy.bool()).float().mean()
    assert agree > 0.98


@pytest.mark.parametrize("item", ["hu_offset", "hu_scale", "gamma", "noise_hu", "blur_sigma"])
def test_each_intensity_change_works_alone_and_only_inside_the_brain(item: str) -> None:
    x, y = _batch()
    value = {"hu_offset": 20.0, "hu_scale": 0.2, "gamma": 0.5, "noise_hu": 8.0, "blur_sigma": 1.5}[item]
    gx, gy = _only(**{item: value})(x, y, torch.Generator().manual_seed(3))
    brain = x > 0
    assert torch.equal(gy, y)  # intensity never touches the mask
    assert (gx[~brain] == 0).all()  # outside the brain stays 0, as prepared
    assert (gx[brain] - x[brain]).abs().max() > 1e-3
    assert gx.min() >= 0 and gx.max() <= 1


def test_hu_offset_shifts_by_whole_hounsfield_units() -> None:
    x, y = _batch()
    gx, _ = _only(hu_offset=10.0)(x, y, torch.Generator().manual_seed(4))
    shift_hu = ((gx - x) * 130.0)[x > 0.2].reshape(-1)
    assert shift_hu.abs().max() <= 10.0 + 1e-3 and shift_hu.abs().max() > 1.0


def test_augment_p_zero_and_determinism() -> None:
    x, y = _batch()
    never = _only(rotate_deg=20.0, noise_hu=5.0, p=0.0)
    assert not never.enabled
    aug = _only(flip=True, rotate_deg=20.0, noise_hu=5.0)
    a = aug(x, y, torch.Generator().manual_seed(7))
    b = aug(x, y, torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_recipe_turns_zero_settings_off() -> None:
    train = TrainConfig(iphbench=_recipe(flip=False, rotate_deg=0, scale=0, hu_offset=0, hu_scale=0, gamma=0,
                                         noise_hu=0, blur_sigma=0, context_share=0.0))  # fmt: skip
    r = resolve_recipe(train, "iphbench", PrepConfig())
    assert r.augmentation is None and r.context_patches_per_subject == 0
    paper = resolve_recipe(TrainConfig(), "paper", PrepConfig())
    assert (paper.optimizer, paper.schedule, paper.select_on, paper.skip_empty, paper.augmentation) == (
        "adam", "plateau", "iou", False, None,
    )  # fmt: skip


# -- schedule ---------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["cosine", "poly", "constant"])
def test_warm_up_then_decay_over_the_step_budget(schedule: str) -> None:
    r = resolve_recipe(TrainConfig(iphbench=_recipe(steps=1000, warmup_steps=100, schedule=schedule)), "iphbench",
                       PrepConfig())  # fmt: skip
    f = [lr_factor(s, r) for s in range(1000)]
    assert f[0] == pytest.approx(0.01) and f[100] == pytest.approx(1.0)
    assert all(a <= b for a, b in itertools.pairwise(f[:101]))  # warm-up rises
    if schedule == "constant":
        assert f[-1] == 1.0
    else:
        assert all(a >= b for a, b in itertools.pairwise(f[100:])) and f[-1] < 0.02
    assert r.epochs == 4 and r.steps_in_epoch(4, 999) == 250


def test_adamw_decays_weights() -> None:
    from iphbench.training.schedule import build_optimizer

    r = resolve_recipe(TrainConfig(iphbench=_recipe(weight_decay=0.1)), "iphbench", PrepConfig())
    opt = build_optimizer(torch.nn.Linear(2, 2), r, CPU)
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["weight_decay"] == 0.1


# -- whole runs -------------------------------------------------------------------------------


def _small_recipe(**kw: object) -> TrainConfig:
    base = _recipe(batch_size=16, steps=9, val_every=3, warmup_steps=2, lr=2e-3)
    return TrainConfig(iphbench=replace(base, **kw))  # type: ignore[arg-type]


def test_iphbench_run_selects_on_subject_dice_and_counts_its_budget(prep_store: Path, tmp_path: Path) -> None:
    store = PatchStore(prep_store)
    result = train_run(store, _folds(store), "unet", "2DSag", 0, tmp_path / "r", ModelConfig(width=4),
                       _small_recipe(), recipe="iphbench")  # fmt: skip
    hist = pd.read_csv(tmp_path / "r" / "history.csv")
    assert hist.step.tolist() == [3, 6, 9] and hist.slices.tolist() == [48, 96, 144]
    assert (result.recipe, result.select_on, result.steps, result.slices) == (
        "iphbench",
        "subject_dice",
        9,
        144,
    )
    assert result.best_epoch == int(hist.val_subject_dice.idxmax()) + 1
    assert result.best_score == pytest.approx(hist.val_subject_dice.max())
    best = torch.load(tmp_path / "r" / "best.pt", weights_only=True)
    assert best["recipe"] == "iphbench" and best["select_on"] == "subject_dice"
    assert hist.lr.iloc[0] == pytest.approx(2e-5)  # the first epoch starts at the warm-up's 1 %


def test_iphbench_run_resumes_exactly(prep_store: Path, tmp_path: Path) -> None:
    """Balanced sampling, augmentation and the per-step schedule all restart where they stopped."""
    store = PatchStore(prep_store)
    folds = _folds(store)
    args = dict(model_cfg=ModelConfig(width=4), train_cfg=_small_recipe(), recipe="iphbench")
    straight = train_run(store, folds, "unet", "2DAxi", 1, tmp_path / "a", **args)  # type: ignore[arg-type]

    def stop(report: object) -> None:
        if getattr(report, "epoch", 0) == 2:
            raise StopRun

    with pytest.raises(StopRun):
        train_run(store, folds, "unet", "2DAxi", 1, tmp_path / "b", progress_cb=stop, **args)  # type: ignore[arg-type]
    resumed = train_run(store, folds, "unet", "2DAxi", 1, tmp_path / "b", **args)  # type: ignore[arg-type]
    assert resumed.resumed_from == 2
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in straight.history]
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_every_writes_last_pt_less_often_and_resume_stays_exact(
    prep_store: Path, tmp_path: Path
) -> None:
    store = PatchStore(prep_store)
    folds = _folds(store)
    cfg = TrainConfig(epochs=4, batch_size=16, steps_per_epoch=2, checkpoint_every=2)
    straight = train_run(store, folds, "unet", "2DCor", 0, tmp_path / "a", ModelConfig(width=4), cfg)

    def stop_at(n: int):  # type: ignore[no-untyped-def]
        def cb(report: object) -> None:
            if getattr(report, "epoch", 0) == n:
                raise StopRun

        return cb

    last = tmp_path / "b" / "last.pt"
    with pytest.raises(StopRun):
        train_run(store, folds, "unet", "2DCor", 0, tmp_path / "b", ModelConfig(width=4), cfg, stop_at(1))
    assert not last.exists()  # epoch 1 is not a checkpoint epoch
    with pytest.raises(StopRun):
        train_run(store, folds, "unet", "2DCor", 0, tmp_path / "b", ModelConfig(width=4), cfg, stop_at(3))
    assert torch.load(last, weights_only=True)["epoch"] == 2  # written after epoch 2, not after 3
    resumed = train_run(store, folds, "unet", "2DCor", 0, tmp_path / "b", ModelConfig(width=4), cfg)
    assert resumed.resumed_from == 2  # epoch 3 was trained again
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in straight.history]
    for name in ("last.pt", "best.pt"):
        a = torch.load(tmp_path / "a" / name, weights_only=True)["model"]
        b = torch.load(tmp_path / "b" / name, weights_only=True)["model"]
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert (
        torch.load(tmp_path / "a" / "last.pt", weights_only=True)["epoch"] == 4
    )  # the last epoch is written
