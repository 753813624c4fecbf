"""Checkpoints of a run: ``last.pt`` (resume state), ``best.pt`` (weights with the best validation IoU).

Both hold only tensors and plain Python values, so they open with
``torch.load(path, weights_only=True)`` (docs/formats.md). Both are written atomically
(temporary file, fsync, ``os.replace``), so a run killed at any moment leaves a complete
previous checkpoint. The paper keeps the model with the highest IoU (section 3.5); here the
IoU is measured on the fold's validation subjects, never on training data.

Example:
    >>> model = load_model("study/runs/unet/2DCor/fold0", device="cpu")  # doctest: +SKIP
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from iphbench._files import atomic_path
from iphbench.config import MODEL_NAMES, ModelConfig

BEST_NAME = "best.pt"
LAST_NAME = "last.pt"


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
        if key not in MODEL_NAMES or not isinstance(value, dict):
            raise ValueError(
                f"models.kwargs must map architecture names {list(MODEL_NAMES)} to settings, "
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
    from iphbench.models import create_model

    extra = dict(kwargs)
    if pretrained is not None:
        extra["pretrained"] = pretrained
    return create_model(name, in_channels=in_channels, classes=classes, width=width, **extra)


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """``torch.save`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


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
        from concurrent.futures import ThreadPoolExecutor

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
    """Load a checkpoint on the CPU with ``weights_only=True`` (no pickled code is ever run)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist; train the run first ('iphbench train')")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:  # foreign objects, truncation
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(
            f"checkpoint {path} cannot be loaded as plain tensors ({reason}); it is damaged or was not written "
            "by iphbench: delete its run folder and train the run again"
        ) from None
    if not isinstance(payload, dict):
        raise ValueError(f"checkpoint {path} does not hold a dict; it was not written by iphbench")
    return payload


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
        raise ValueError(f"checkpoint {path} lacks {missing}; it is not a best.pt written by iphbench")
    model = build_model(
        str(payload["arch"]),
        int(payload["width"]),
        dict(payload.get("model_kwargs", {})),
        in_channels=int(payload.get("in_channels", 1)),
        classes=int(payload.get("classes", 1)),
    )
    model.load_state_dict(payload["model"])
    return model.to(device).eval()


__all__ = [
    "BEST_NAME",
    "LAST_NAME",
    "CheckpointWriter",
    "best_payload",
    "build_model",
    "cpu_state_dict",
    "load_checkpoint",
    "load_model",
    "model_kwargs",
    "save_checkpoint",
    "to_cpu",
]
