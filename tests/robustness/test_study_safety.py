"""Study safety (issue 20, items 5, 6, 11, 12): every numeric setting checked before anything runs,
nothing written before the inputs are checked, and checkpoints that are refused by name when they
are damaged, cut, bit-flipped or do not fit their architecture."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import yaml
from robustness_helpers import digests, invoke, tiny_study

from iphbench.training import checkpoint as ckpt

RUN = Path("runs") / "unet" / "2DAxi"  # the trained study's runs: unet, 2DAxi, folds 0 and 1


def study_yaml(folder: Path, cohort: Path, **sections: dict[str, Any]) -> Path:
    """The trained study's YAML (tiny_study) with settings of ``sections`` set (nested dicts merge)."""
    path = tiny_study(folder, cohort, out=str(folder / "study"))
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for name, values in sections.items():
        _merge(data.setdefault(name, {}), values)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _merge(into: dict[str, Any], values: dict[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(value, dict):
            _merge(into.setdefault(key, {}), value)
        else:
            into[key] = value


# -- item 5: every numeric setting is checked when the config is loaded ---------------------------
BAD_SETTINGS = [
    ({"train": {"epochs": 0}}, "train.epochs must be at least 1"),  # "trained" runs that wrote no best.pt
    ({"train": {"batch_size": -1}}, "train.batch_size must be at least 1"),  # failed deep inside torch
    ({"train": {"lr": float("nan")}}, "train.lr must be a finite number"),
    ({"train": {"lr": True}}, "train.lr must be a number"),
    ({"train": {"plateau_factor": 1.5}}, "train.plateau_factor must lie in (0, 1)"),
    ({"train": {"iphbench": {"steps": 0}}}, "train.iphbench.steps must be at least 1"),
    ({"train": {"iphbench": {"lr": float("inf")}}}, "train.iphbench.lr must be a finite number"),
    ({"prep": {"patch_size": 40}}, "prep.patch_size must be a positive multiple of 16"),
    ({"prep": {"hu_min": 200}}, "prep.hu_min (200) must be less than prep.hu_max (100)"),
    ({"prep": {"target_spacing": [1.0, 1.0, 0.0]}}, "prep.target_spacing[2] must be > 0"),
    ({"prep": {"mask_labels": [0]}}, "prep.mask_labels[0] must be at least 1"),
    ({"models": {"width": 0}}, "models.width must be at least 1"),
    ({"folds": {"k": 1}}, "folds.k must be at least 2"),
    ({"folds": {"val_fraction": 1.0}}, "folds.val_fraction must lie in (0, 1)"),
    ({"eval": {"threshold": 0}}, "eval.threshold must lie in (0, 1)"),
    ({"eval": {"learning_check": {"min_dice": 2}}}, "eval.learning_check.min_dice must lie in [0, 1]"),
    ({"nnunet": {"epochs": 0}}, "nnunet.epochs must be at least 1"),
]


@pytest.mark.parametrize(
    ("sections", "message"), BAD_SETTINGS, ids=[m.split(" ")[0] for _, m in BAD_SETTINGS]
)
def test_study_run_refuses_a_bad_number_naming_the_key_and_file(
    tmp_path: Path, base_cohort: Path, sections: dict[str, Any], message: str
) -> None:
    path = study_yaml(tmp_path, base_cohort, **sections)
    code, out = invoke("study", "run", str(path), "--no-progress")
    assert code == 1 and message in out and str(path) in out, out
    assert "Traceback" not in out
    assert not (tmp_path / "study").exists()  # nothing written, not even the study folder


def test_study_run_refuses_an_unknown_model_before_writing(tmp_path: Path, base_cohort: Path) -> None:
    """Which names exist is the model registry's to say; the grid asks it before its first write."""
    path = study_yaml(tmp_path, base_cohort, models={"names": ["unet", "resnet"]})
    code, out = invoke("study", "run", str(path), "--no-progress")
    assert code == 1 and "unknown models ['resnet']" in out and "valid models are" in out, out
    assert str(path) in out and "Traceback" not in out
    assert not (tmp_path / "study").exists()


# -- item 6: nothing is written before the inputs are checked -------------------------------------
def test_a_missing_cohort_creates_no_study_folder(tmp_path: Path, base_cohort: Path) -> None:
    missing = tmp_path / "moved away" / "cohort.csv"
    code, out = invoke("study", "run", str(study_yaml(tmp_path, missing)), "--no-progress")
    assert code == 1 and f"cohort manifest not found: {missing}" in out and "Traceback" not in out, out
    assert not (tmp_path / "study").exists()


def test_a_missing_cohort_changes_no_byte_and_the_corrected_path_goes_on(
    tmp_path: Path, study_copy: Path, odd_cohort: Path
) -> None:
    """The bug: the study was stamped with the missing path, then the corrected config was refused as
    "made with a different config". Now the folder is untouched, and the study goes on from the corrected
    path, and from a moved copy of the cohort (the cohort's path is not part of the study's hash)."""
    before = digests(study_copy)
    missing = tmp_path / "nowhere" / "cohort.csv"
    yaml_path = tiny_study(tmp_path, missing, out=str(study_copy))
    code, out = invoke("study", "run", str(yaml_path), "--no-progress")
    assert code == 1 and str(missing) in out and "Traceback" not in out, out
    assert digests(study_copy) == before

    code, out = invoke(
        "study", "run", str(tiny_study(tmp_path, odd_cohort, out=str(study_copy))), "--no-progress"
    )
    assert code == 0 and "different config" not in out and "0 trained, 2 already done" in out, out

    moved = tmp_path / "new disk"
    shutil.copytree(odd_cohort.parent, moved)  # the cohort's folder, paths inside relative to it
    code, out = invoke(
        "study",
        "run",
        str(tiny_study(tmp_path, moved / odd_cohort.name, out=str(study_copy))),
        "--no-progress",
    )
    assert code == 0 and "0 trained, 2 already done" in out, out


def test_a_cohort_of_other_subjects_is_refused_without_writing(
    tmp_path: Path, study_copy: Path, odd_cohort: Path
) -> None:
    """With the cohort's path out of the study hash, the subjects guard what the study was split over."""
    rows = pd.read_csv(odd_cohort, dtype=str)
    rows["image"] = [str((odd_cohort.parent / p).resolve()) for p in rows["image"]]
    rows["mask"] = [str((odd_cohort.parent / p).resolve()) for p in rows["mask"]]
    fewer = tmp_path / "fewer.csv"
    rows.iloc[1:].to_csv(fewer, index=False)
    before = digests(study_copy)
    code, out = invoke("study", "run", str(tiny_study(tmp_path, fewer, out=str(study_copy))), "--no-progress")
    dropped = rows["subject"].iloc[0]
    assert code == 1 and str(fewer) in out and f"1 ({dropped}) of the study missing" in out, out
    assert "Traceback" not in out and digests(study_copy) == before


# -- items 11 and 12: damaged checkpoints are refused by name, with exit 1 ------------------------
def evaluate(study: Path) -> tuple[int, str]:
    shutil.rmtree(study / "eval", ignore_errors=True)  # the cached results would load no model
    return invoke("evaluate", str(study), "--device", "cpu")


def predict(study: Path, scan: str, tmp_path: Path) -> tuple[int, str]:
    out_mask = tmp_path / "mask.nii.gz"
    code, out = invoke("predict", scan, "--study", str(study), "-o", str(out_mask), "--views", "2DAxi")
    assert code != 0 or out_mask.exists()
    return code, out


@pytest.fixture
def scan(base_rows: pd.DataFrame) -> str:
    return str(base_rows["image"][0])


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, in the weights: torch itself loads this silently
    path.write_bytes(bytes(data))


def test_a_bit_flipped_best_pt_is_refused_and_an_untouched_one_loads(
    study_copy: Path, scan: str, tmp_path: Path
) -> None:
    best = study_copy / RUN / "fold1" / "best.pt"
    for code, out in (evaluate(study_copy), predict(study_copy, scan, tmp_path)):  # untouched: works
        assert code == 0 and "Traceback" not in out, out
    flip_byte(best)
    for code, out in (evaluate(study_copy), predict(study_copy, scan, tmp_path)):
        assert code == 1 and f"checkpoint {best} is damaged" in out and "SHA-256" in out, out
        assert "train the run again" in out and "Traceback" not in out


def test_a_bit_flip_is_refused_before_the_evaluation_cache_is_discarded(study_copy: Path) -> None:
    """The flip changes best.pt's modification time, hence the evaluation key; the cached results of
    the evaluated study must survive the refusal (they were deleted before the damage was found)."""
    best = study_copy / RUN / "fold1" / "best.pt"
    cached = digests(study_copy / "eval")
    assert any(name.endswith(".csv") for name in cached)
    flip_byte(best)
    code, out = invoke("evaluate", str(study_copy), "--device", "cpu")
    assert code == 1 and f"checkpoint {best} is damaged" in out and "Traceback" not in out, out
    assert digests(study_copy / "eval") == cached


@pytest.mark.parametrize("digest_file", ["kept", "absent (a study of iphbench before the digests)"])
def test_a_truncated_best_pt_exits_1_naming_the_file(
    study_copy: Path, scan: str, tmp_path: Path, digest_file: str
) -> None:
    """docs/predict.md: an unusable study exits 1; a truncated best.pt made predict exit 2."""
    best = study_copy / RUN / "fold0" / "best.pt"
    best.write_bytes(best.read_bytes()[:2000])
    if digest_file != "kept":
        ckpt.digest_path(best).unlink()
    reason = "SHA-256" if digest_file == "kept" else "cannot be loaded as plain tensors"
    for code, out in (evaluate(study_copy), predict(study_copy, scan, tmp_path)):
        assert code == 1 and f"checkpoint {best}" in out and reason in out, out
        assert "train the run again" in out and "Traceback" not in out


def rewrite_best(best: Path, **change: Any) -> None:
    """Rewrite ``best.pt`` with some entries changed, through iphbench's own writer (digest matches)."""
    payload = ckpt.load_checkpoint(best)
    ckpt.save_checkpoint(best, {**payload, **change})


def test_weights_of_another_width_are_named_in_one_line(study_copy: Path, scan: str, tmp_path: Path) -> None:
    best = study_copy / RUN / "fold0" / "best.pt"
    wider = ckpt.build_model("unet", 8, {"batch_norm": True})
    rewrite_best(best, model=ckpt.cpu_state_dict(wider))  # the payload still says width 4
    for code, out in (evaluate(study_copy), predict(study_copy, scan, tmp_path)):
        assert code == 1 and f"checkpoint {best}: its weights do not fit a unet of width 4" in out, out
        assert "of another shape" in out and "(8, 1, 3, 3) in the file, (4, 1, 3, 3) expected" in out
        assert "size mismatch" not in out and "Traceback" not in out  # not torch's dump
        assert len(out) < 1500


def test_an_unknown_architecture_is_named(study_copy: Path, scan: str, tmp_path: Path) -> None:
    best = study_copy / RUN / "fold0" / "best.pt"
    rewrite_best(best, arch="resnet")
    for code, out in (evaluate(study_copy), predict(study_copy, scan, tmp_path)):
        assert code == 1 and f"checkpoint {best} describes a model that cannot be built ('resnet'" in out, out
        assert "Traceback" not in out


def test_resuming_from_a_damaged_last_pt_exits_1_naming_it(
    tmp_path: Path, study_copy: Path, odd_cohort: Path
) -> None:
    run = study_copy / RUN / "fold0"
    (run / "done.json").unlink()  # an unfinished run: study run resumes it from last.pt
    flip_byte(run / "last.pt")
    code, out = invoke(
        "study", "run", str(tiny_study(tmp_path, odd_cohort, out=str(study_copy))), "--no-progress"
    )
    assert code == 1 and f"checkpoint {run / 'last.pt'} is damaged" in out and "SHA-256" in out, out
    assert "Traceback" not in out and not (run / "done.json").exists()


def test_every_checkpoint_has_its_sha256(trained_study: Path) -> None:
    """``<name>.sha256`` in sha256sum format, one line, matching the file."""
    paths = sorted((trained_study / "runs").rglob("*.pt"))
    assert len(paths) == 4
    for path in paths:
        text = ckpt.digest_path(path).read_text(encoding="utf-8")
        assert text == f"{ckpt.file_sha256(path)}  {path.name}\n"


def test_a_kill_between_checkpoint_and_digest_leaves_a_loadable_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The digest file cannot change with the checkpoint in one step: killed in between, the
    checkpoint on disk (old or new) is still listed, a changed bit is still refused, and
    seal_checkpoint (before done.json) leaves exactly the final digest."""
    path = tmp_path / "best.pt"
    first = ckpt.save_checkpoint(path, {"model": {"w": torch.zeros(3)}})

    class Killed(BaseException):
        pass

    real = ckpt._write_digests
    calls: list[int] = []

    def killed_second_time(p: Path, listed: list[str]) -> None:
        calls.append(1)
        if len(calls) == 2:  # after the rename, before the digest file lists only the new digest
            raise Killed
        real(p, listed)

    monkeypatch.setattr(ckpt, "_write_digests", killed_second_time)
    with pytest.raises(Killed):
        ckpt.save_checkpoint(path, {"model": {"w": torch.ones(3)}})
    monkeypatch.undo()
    second = ckpt.file_sha256(path)
    assert ckpt.read_digests(path) == [first, second]
    assert torch.equal(ckpt.load_checkpoint(path)["model"]["w"], torch.ones(3))
    assert ckpt.seal_checkpoint(path) == second and ckpt.read_digests(path) == [second]
    flip_byte(path)
    with pytest.raises(ckpt.CheckpointError, match="SHA-256"):
        ckpt.load_checkpoint(path)


def test_the_study_json_of_an_older_hash_is_still_accepted(
    tmp_path: Path, study_copy: Path, odd_cohort: Path
) -> None:
    """study.json written before issue 20 hashed the cohort's path too: such a study is accepted
    (and its study.json brought up to date), not refused as "made with a different config"."""
    from iphbench.config import StudyConfig, config_hash
    from iphbench.study.grid import _hashed_settings, study_hash

    yaml_path = tiny_study(tmp_path, odd_cohort, out=str(study_copy))
    cfg = StudyConfig.load(yaml_path)
    marker = study_copy / "study.json"
    old = {
        **json.loads(marker.read_text()),
        "config_hash": config_hash(_hashed_settings(cfg, with_cohort=True)),
    }
    marker.write_text(json.dumps(old))
    code, out = invoke("study", "run", str(yaml_path), "--no-progress")
    assert code == 0 and "0 trained, 2 already done" in out, out
    assert json.loads(marker.read_text())["config_hash"] == study_hash(cfg)


def test_predict_with_a_study_whose_config_is_invalid_exits_1(
    study_copy: Path, scan: str, tmp_path: Path
) -> None:
    """A config.yaml edited into an invalid value makes the study unusable (exit 1), not a bad argument (2)."""
    path = study_copy / "config.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["eval"]["threshold"] = 1.5
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    code, out = invoke("predict", scan, "--study", str(study_copy), "-o", str(tmp_path / "m.nii.gz"))
    assert code == 1 and "eval.threshold" in out and str(path) in out and "Traceback" not in out, out
    assert not (tmp_path / "m.nii.gz").exists()
