"""torch.compile in the trainer: when it is on, its cache folder, padded validation, and eager when it fails."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from iphbench.config import ConfigError, FoldsConfig, ModelConfig, StudyConfig, TrainConfig
from iphbench.preprocessing.store import PatchStore
from iphbench.study.grid import study_hash
from iphbench.training import engine as engine_mod
from iphbench.training import make_folds, train_run
from iphbench.training.checkpoint import build_model
from iphbench.training.compiled import (
    CACHE_ENV,
    Guarded,
    compile_cache,
    resolve_cache,
    resolve_compile,
    uses_cudagraphs,
)
from iphbench.training.data import SliceSet
from iphbench.training.engine import Engine
from iphbench.training.loss import soft_counts
from iphbench.training.run_files import run_settings
from iphbench.training.sampling import load_run_slices
from iphbench.training.validation import EVAL_BATCH, eval_batch_size, validate

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_compile_auto_is_on_for_cuda_only() -> None:
    assert TrainConfig().compile == "auto" and TrainConfig().compile_mode == "default"
    assert resolve_compile("auto", CUDA) and not resolve_compile("auto", CPU)
    assert resolve_compile(True, CPU) and not resolve_compile(False, CUDA)
    with pytest.raises(ValueError, match="'auto', true or false"):
        resolve_compile("yes", CPU)
    assert uses_cudagraphs("reduce-overhead") and not uses_cudagraphs("max-autotune-no-cudagraphs")


def test_compile_settings_are_checked_and_never_part_of_a_run_s_identity() -> None:
    assert StudyConfig.from_dict({"train": {"compile": True}}).train.compile is True
    assert StudyConfig.from_dict({"train": {"compile": "auto"}}).train.compile == "auto"
    with pytest.raises(ConfigError, match=r"train\.compile must be"):
        StudyConfig.from_dict({"train": {"compile": "sometimes"}})
    with pytest.raises(ConfigError, match=r"train\.compile_mode must be one of"):
        StudyConfig.from_dict({"train": {"compile_mode": "fast"}})
    base = StudyConfig()
    fast = StudyConfig.from_dict(
        {
            "train": {
                "compile": True,
                "compile_mode": "reduce-overhead",
                "compile_cache": "/x",
                "checkpoint_every": 5,
            }
        }
    )
    assert study_hash(base) == study_hash(fast)  # how fast runs train does not change what they train
    args = ("unet", "2DCor", 0, ModelConfig(), None, ["a"], ["b"], "paper")
    a = run_settings(*args[:4], base.train, *args[5:])  # type: ignore[arg-type]
    b = run_settings(*args[:4], fast.train, *args[5:])  # type: ignore[arg-type]
    assert a == b


def test_compile_cache_points_inductor_at_the_study_folder_then_restores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, "/users/own/cache")
    assert resolve_cache("auto", tmp_path / "study") == str(tmp_path / "study" / "cache" / "compile")
    assert resolve_cache("auto", None) == "auto" and resolve_cache("none", tmp_path) == "none"
    folder = resolve_cache("auto", tmp_path / "study")
    with compile_cache(folder) as used:
        assert used is not None and used.is_dir() and os.environ[CACHE_ENV] == str(used)
        from torch._inductor.runtime.cache_dir_utils import cache_dir

        assert cache_dir() == str(used)  # what inductor itself will use
    assert os.environ[CACHE_ENV] == "/users/own/cache"
    with compile_cache("none") as used:
        assert used is None and os.environ[CACHE_ENV] == "/users/own/cache"


def test_guarded_falls_back_to_eager_once_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    def broken(x: int) -> int:
        calls.append("compiled")
        raise RuntimeError("inductor: no C++ compiler")

    g = Guarded(lambda x: x * 2, broken, "demo")
    with caplog.at_level(logging.WARNING):
        assert g(3) == 6 and g(4) == 8
    assert calls == ["compiled"] and not g.active and "no C++ compiler" in (g.error or "")
    assert "torch.compile of demo failed" in caplog.text


def test_weighted_counts_leave_padding_out() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 1, 8, 8, generator=gen)
    target = (torch.rand(5, 1, 8, 8, generator=gen) > 0.7).float()
    padded_l = torch.cat([logits, torch.randn(3, 1, 8, 8, generator=gen)])
    padded_t = torch.cat([target, torch.ones(3, 1, 8, 8)])
    w = torch.tensor([1.0] * 5 + [0.0] * 3)
    a, b = soft_counts(logits, target), soft_counts(padded_l, padded_t, weight=w)
    for field in ("tp", "fp", "fn", "focal_sum", "n"):
        assert torch.allclose(getattr(a, field), getattr(b, field), rtol=1e-5), field


def _eager_as_compiled(fn: Callable[..., Any], mode: str) -> Callable[..., Any]:
    return fn  # the compiled code path (padding, weights, guards) without paying a compilation


def test_padded_validation_equals_the_eager_one(prep_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = PatchStore(prep_store)
    va = load_run_slices(store, store.subjects[:3], "2DSag")
    data = SliceSet.build(va.images, va.masks, CPU, torch.float32, subject=va.subject)
    torch.manual_seed(0)
    eager = Engine.build(build_model("unet", 4, {}), TrainConfig(compile=False), CPU, torch.float32)
    monkeypatch.setattr(engine_mod, "compile_fn", _eager_as_compiled)
    padded = Engine.build(build_model("unet", 4, {}), TrainConfig(compile=True), CPU, torch.float32)
    padded.model.load_state_dict(eager.model.state_dict())
    assert padded.compile_mode == "default" and eager.compile_mode is None
    assert eval_batch_size(16, data.n, eager) == 256
    size = eval_batch_size(16, data.n, padded)
    assert size >= data.n and size & (size - 1) == 0 and size <= EVAL_BATCH
    a = validate(eager, data, 256)
    batch = next(b for b in (96, 100, 90) if data.n % b and data.n > b)
    b = validate(padded, data, batch)  # several batches and a padded last one
    assert a.keys() == b.keys()
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-7), k


def _folds(store: PatchStore) -> pd.DataFrame:
    return make_folds(store.subjects_table, FoldsConfig(k=4, val_fraction=0.2, seed=0))


def test_a_run_whose_compilation_fails_trains_eagerly_and_identically(
    prep_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = PatchStore(prep_store)
    folds = _folds(store)
    cfg = TrainConfig(epochs=2, batch_size=16, steps_per_epoch=2, compile=False)
    eager = train_run(store, folds, "unet", "2DCor", 0, tmp_path / "eager", ModelConfig(width=4), cfg)

    def failing(fn: Callable[..., Any], mode: str) -> Callable[..., Any]:
        def run(*a: Any) -> Any:
            raise RuntimeError("simulated inductor failure")

        return run

    monkeypatch.setattr(engine_mod, "compile_fn", failing)
    cfg_c = TrainConfig(epochs=2, batch_size=16, steps_per_epoch=2, compile=True)
    with caplog.at_level(logging.WARNING):
        failed = train_run(store, folds, "unet", "2DCor", 0, tmp_path / "failed", ModelConfig(width=4), cfg_c)
    assert failed.compile.startswith("failed, eager: RuntimeError: simulated inductor failure")
    assert eager.compile == "off"
    assert "running it eagerly" in caplog.text
    assert [h["val_loss"] for h in failed.history] == [h["val_loss"] for h in eager.history]
    a = torch.load(tmp_path / "eager" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "failed" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_a_compiled_run_on_cpu_matches_the_eager_one(
    prep_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dynamo and AOTAutograd (forward+loss, backward, padded validation) for real; the ``aot_eager``
    backend stands in for inductor, which needs a C++ compiler and minutes on a CPU."""
    store = PatchStore(prep_store)
    folds = _folds(store)
    model = ModelConfig(width=4)
    eager = train_run(store, folds, "unet", "2DAxi", 0, tmp_path / "e", model,
                      TrainConfig(epochs=2, batch_size=16, steps_per_epoch=2, compile=False))  # fmt: skip

    def aot_eager(fn: Callable[..., Any], mode: str) -> Callable[..., Any]:
        return torch.compile(fn, backend="aot_eager", dynamic=False)

    monkeypatch.setattr(engine_mod, "compile_fn", aot_eager)
    torch._dynamo.reset()
    compiled = train_run(store, folds, "unet", "2DAxi", 0, tmp_path / "c", model,
                         TrainConfig(epochs=2, batch_size=16, steps_per_epoch=2, compile=True))  # fmt: skip
    assert compiled.compile == "default"
    for h_e, h_c in zip(eager.history, compiled.history, strict=True):
        for k in ("train_loss", "val_loss", "val_dice", "val_iou"):
            assert h_c[k] == pytest.approx(h_e[k], rel=1e-3, abs=1e-4), k


def test_each_compiled_run_starts_from_a_clean_dynamo(
    prep_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs trained one after another in one process would otherwise pile up recompilations of the
    same function until dynamo's recompile limit sends later runs eager."""
    store = PatchStore(prep_store)
    folds = _folds(store)
    resets: list[int] = []
    monkeypatch.setattr(torch._dynamo, "reset", lambda: resets.append(1))
    monkeypatch.setattr(engine_mod, "compile_fn", _eager_as_compiled)
    for k, compile in enumerate((True, True, False)):
        cfg = TrainConfig(epochs=1, batch_size=16, steps_per_epoch=1, compile=compile)
        train_run(store, folds, "unet", "2DCor", k, tmp_path / f"r{k}", ModelConfig(width=4), cfg)
    assert len(resets) == 2
