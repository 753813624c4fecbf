"""Checkpoints of a run: ``last.pt`` (resume state), ``best.pt`` (weights with the best validation IoU).

Both hold only tensors and plain Python values, so they open with
``torch.load(path, weights_only=True)`` (docs/formats.md). Both are written atomically
(temporary file, fsync, ``os.replace``), so a run killed at any moment leaves a complete
previous checkpoint. The paper keeps the model with the highest IoU (section 3.5); here the
IoU is measured on the fold's validation subjects, never on training data.

Every checkpoint written here (``best.pt``, ``last.pt``, an nnU-Net fold's ``model.pt``) gets
its SHA-256 in ``<name>.sha256`` (``sha256sum`` format: ``sha256sum -c best.pt.sha256`` checks
it), verified on every load: a bit flipped on disk loads silently otherwise (torch checks no
checksum). Anything wrong with a checkpoint (damaged, truncated, not written by iphbench,
weights that do not fit its architecture) raises one :class:`CheckpointError` naming the file
and what to do.

Example:
    >>> model = load_model("study/runs/unet/2DCor/fold0", device="cpu")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from torch import nn

from iphbench._files import atomic_path, atomic_write_text
from iphbench.config import ModelConfig
from iphbench.models import create_model, list_models

log = logging.getLogger(__name__)

BEST_NAME = "best.pt"
LAST_NAME = "last.pt"
DIGEST_SUFFIX = ".sha256"  # best.pt -> best.pt.sha256
_REMEDY = "delete its run folder and train the run again"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: damaged, not written by iphbench, or not fitting its model.

    A RuntimeError (not a ValueError): the CLI verbs exit 1 for it, an unusable study, never 2
    (bad arguments).
    """


def model_kwargs(model_cfg: ModelConfig, name: str) -> dict[str, Any]:
    """Keyword arguments for ``create_model(name, ...)`` beyond ``width``, as stored in ``best.pt``.

    ``batch_norm`` plus ``model_cfg.kwargs[name]`` (extras are keyed by architecture name,
    e.g. ``{"transunet": {"depth": 4}}``). ``pretrained`` is not included: it only seeds the
    initial weights of training (see :func:`build_model`), a checkpoint never needs it.

    Raises:
        ValueError: a key of ``model_cfg.kwargs`` is not a model name, or its value is not a mapping.
    """
    out: dict[str, Any] = {"batch_norm": model_cfg.batch_norm}
    for key, value in model_cfg.kwargs.items():
        if key not in list_models() or not isinstance(value, dict):
            raise ValueError(
                f"models.kwargs must map architecture names {list_models()} to settings, "
                f"got {key!r}: {value!r}; write e.g. kwargs: {{transunet: {{depth: 4}}}}"
            )
    out.update(model_cfg.kwargs.get(name, {}))
    return out


def build_model(
    name: str,
    width: int,
    kwargs: dict[str, Any],
    in_channels: int = 1,
    classes: int = 1,
    pretrained: str | None = None,
) -> nn.Module:
    """Create a registry model (``iphbench.models.create_model``): 1 input channel, 1 logit out.

    ``pretrained`` (a local VGG16 weights file) is passed only when set.
    """
    extra = dict(kwargs)
    if pretrained is not None:
        extra["pretrained"] = pretrained
    return create_model(name, in_channels=in_channels, classes=classes, width=width, **extra)


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> str:
    """``torch.save`` to ``path`` atomically, with its SHA-256 in ``<path>.sha256``; returns the digest.

    The digest file and the checkpoint cannot be replaced in one step, so the new digest is
    listed next to the old one before the checkpoint is renamed into place, and alone after:
    a run killed at any moment leaves a checkpoint whose digest is listed (never a finished
    looking run with a wrong digest). :func:`seal_checkpoint` drops a stale entry.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
        digest = file_sha256(tmp)
        _write_digests(path, [*_digests_now(path), digest])
    _write_digests(path, [digest])
    return digest


def digest_path(path: str | Path) -> Path:
    """Where the SHA-256 of checkpoint ``path`` is kept: ``<path>.sha256``."""
    path = Path(path)
    return path.with_name(path.name + DIGEST_SUFFIX)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, as 64 hex digits."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_digests(path: str | Path) -> list[str] | None:
    """The SHA-256 digests listed for checkpoint ``path``; None when it has no digest file.

    Raises:
        CheckpointError: the digest file is not a ``sha256sum`` list for this checkpoint.
    """
    path = Path(path)
    side = digest_path(path)
    try:
        text = side.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        text = "\0"
    digests = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and _SHA256.fullmatch(parts[0]) and parts[1].lstrip("*") == path.name:
            digests.append(parts[0])
        elif line.strip():
            digests = []
            break
    if not digests:
        raise CheckpointError(
            f"{side} does not hold the SHA-256 of {path.name} ('<64 hex digits>  {path.name}'), so checkpoint "
            f"{path} cannot be verified; {_REMEDY}"
        )
    return digests


def _write_digests(path: Path, digests: list[str]) -> None:
    atomic_write_text(digest_path(path), "".join(f"{d}  {path.name}\n" for d in dict.fromkeys(digests)))


def _digests_now(path: Path) -> list[str]:
    """Digests the checkpoint now at ``path`` may have: listed ones, or its own when none are listed."""
    if not path.exists():
        return []
    try:
        listed = read_digests(path)
    except CheckpointError:
        listed = None
    return listed if listed is not None else [file_sha256(path)]


def verify_checkpoint(path: str | Path) -> str | None:
    """Compare checkpoint ``path`` with its SHA-256; returns the digest, or None when none is stored.

    A checkpoint without a digest file (written by iphbench 0.1.0 before the digests, or
    its ``.sha256`` deleted) is loaded with a warning: the study version check already refuses
    studies of other iphbench versions, and refusing would strand studies that trained well.

    Raises:
        CheckpointError: the file's digest is not the one stored (a flipped bit, a truncated or
            replaced file), naming both digests.
    """
    path = Path(path)
    expected = read_digests(path)
    if expected is None:
        log.warning("%s has no %s: loading it without checking its SHA-256", path, digest_path(path).name)
        return None
    return _check_digest(path, expected)


def _check_digest(path: Path, expected: list[str]) -> str:
    found = file_sha256(path)
    if found not in expected:
        raise CheckpointError(
            f"checkpoint {path} is damaged: its SHA-256 is {found} but {digest_path(path).name} records "
            f"{' or '.join(expected)} (a changed bit, a cut or a replaced file); {_REMEDY}"
        )
    return found


def seal_checkpoint(path: str | Path) -> str:
    """Verify a final checkpoint and leave its digest file listing exactly its digest.

    Called before a run is marked finished (``done.json``): a run killed between writing a
    checkpoint and its digest file may have left two digests listed, or (a run begun by an
    iphbench without digests) none.

    Raises:
        CheckpointError: the checkpoint is missing or does not match its listed digests.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} was never written; {_REMEDY}")
    expected = read_digests(path)
    digest = file_sha256(path) if expected is None else _check_digest(path, expected)
    if expected != [digest]:
        _write_digests(path, [digest])
    return digest


def to_cpu(obj: Any) -> Any:
    """A copy of ``obj`` (nested dicts, lists, tuples) whose tensors are detached CPU clones.

    What a background write may hold while training goes on changing the live tensors.
    """
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


class CheckpointWriter:
    """Writes checkpoints off the training loop's critical path: one background thread, in order.

    :meth:`save` takes a payload of CPU copies (:func:`to_cpu`) and returns at once; the write
    itself is atomic, so a run killed mid-write keeps the previous file. :meth:`close` waits for
    every pending write and re-raises the first error (a full disk is never silent).

    Example:
        >>> with CheckpointWriter() as writer:  # doctest: +SKIP
        ...     writer.save("last.pt", to_cpu(state))
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="iphbench-ckpt")
        self._pending: list[Any] = []

    def save(self, path: str | Path, payload: dict[str, Any]) -> None:
        self._raise_done()
        self._pending.append(self._pool.submit(save_checkpoint, path, payload))

    def _raise_done(self) -> None:
        done = [f for f in self._pending if f.done()]
        self._pending = [f for f in self._pending if not f.done()]
        for f in done:
            f.result()

    def close(self) -> None:
        try:
            for f in self._pending:
                f.result()
        finally:
            self._pending = []
            self._pool.shutdown(wait=True)

    def __enter__(self) -> CheckpointWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint on the CPU with ``weights_only=True`` (no pickled code is ever run),
    after checking its SHA-256 (:func:`verify_checkpoint`).

    Raises:
        FileNotFoundError: there is no such file.
        CheckpointError: a wrong digest, or bytes that are not a checkpoint of plain tensors.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist; train the run first ('iphbench train')")
    verify_checkpoint(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as exc:  # foreign objects, truncation, any bytes torch cannot parse
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0]  # torch's cause
        raise CheckpointError(
            f"checkpoint {path} cannot be loaded as plain tensors ({reason}); it is damaged or was not written "
            f"by iphbench: {_REMEDY}"
        ) from None
    if not isinstance(payload, dict):
        raise CheckpointError(
            f"checkpoint {path} does not hold a dict; it was not written by iphbench: {_REMEDY}"
        )
    return payload


def load_weights(model: nn.Module, state: Any, path: str | Path, what: str) -> None:
    """Load ``state`` into ``model``, or raise CheckpointError naming the file and the first misfits.

    torch's own error lists every mismatching tensor over dozens of lines without the file;
    this one says, in one line, how many tensors do not fit and shows the first three.

    Args:
        model: the model built from the checkpoint's description.
        state: the checkpoint's state dict.
        path: the checkpoint (for the message).
        what: the model in words, e.g. ``"unet of width 4"``.
    """
    own = model.state_dict()
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {path} holds no state dict of tensors under 'model'; {_REMEDY}")
    shapes = [f"{k} {tuple(state[k].shape)} in the file, {tuple(v.shape)} expected"
              for k, v in own.items() if k in state and state[k].shape != v.shape]  # fmt: skip
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    problems = [
        f"{len(items)} {label} ({'; '.join(items[:3])}{'; ...' if len(items) > 3 else ''})"
        for label, items in (("tensor(s) of another shape", shapes), ("missing", missing),
                             ("unexpected", unexpected)) if items
    ]  # fmt: skip
    if problems:
        raise CheckpointError(
            f"checkpoint {path}: its weights do not fit a {what}: {', '.join(problems)}; it is damaged or was "
            f"not written by iphbench: {_REMEDY}"
        )
    model.load_state_dict(state)


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``model``'s state dict (safe to keep while training goes on)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def best_payload(
    model: nn.Module,
    arch: str,
    width: int,
    kwargs: dict[str, Any],
    view: str,
    fold: int,
    epoch: int,
    val_iou: float,
) -> dict[str, Any]:
    """The content of ``best.pt``: weights plus everything :func:`load_model` needs."""
    return {
        "model": cpu_state_dict(model),
        "arch": arch,
        "width": int(width),
        "model_kwargs": dict(kwargs),
        "view": view,
        "fold": int(fold),
        "epoch": int(epoch),
        "val_iou": float(val_iou),
        "in_channels": 1,
        "classes": 1,
    }


def _resolve(run_dir_or_ckpt: str | Path) -> Path:
    path = Path(run_dir_or_ckpt)
    return path / BEST_NAME if path.is_dir() else path


def load_model(run_dir_or_ckpt: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model of a run from its ``best.pt`` (or any checkpoint in that format), in eval mode.

    Args:
        run_dir_or_ckpt: a run folder (``runs/<model>/<view>/fold<k>``) or a ``best.pt`` path.
        device: where to put the model.
    """
    path = _resolve(run_dir_or_ckpt)
    payload = load_checkpoint(path)
    missing = [k for k in ("model", "arch", "width") if k not in payload]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} lacks {missing}; it is not a best.pt written by iphbench: {_REMEDY}"
        )
    arch, width = payload["arch"], payload["width"]
    try:
        model = build_model(
            str(arch),
            int(width),
            dict(payload.get("model_kwargs", {})),
            in_channels=int(payload.get("in_channels", 1)),
            classes=int(payload.get("classes", 1)),
        )
    except (KeyError, TypeError, ValueError) as exc:  # an unknown architecture, bad settings
        reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise CheckpointError(
            f"checkpoint {path} describes a model that cannot be built ({arch!r}, width {width!r}: {reason}); "
            f"{_REMEDY}"
        ) from None
    load_weights(model, payload["model"], path, f"{arch} of width {width}")
    return model.to(device).eval()


__all__ = [
    "BEST_NAME",
    "DIGEST_SUFFIX",
    "LAST_NAME",
    "CheckpointError",
    "CheckpointWriter",
    "best_payload",
    "build_model",
    "cpu_state_dict",
    "digest_path",
    "file_sha256",
    "load_checkpoint",
    "load_model",
    "load_weights",
    "model_kwargs",
    "read_digests",
    "save_checkpoint",
    "seal_checkpoint",
    "to_cpu",
    "verify_checkpoint",
]
