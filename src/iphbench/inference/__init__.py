"""Inference: per-view probabilities for prepared subjects, 2.5D fusion, and the models of a study."""

from __future__ import annotations

from iphbench._device import resolve_device
from iphbench.inference.fusion import fuse_views, threshold
from iphbench.inference.predictor import predict_patches, predict_subject_views

__all__ = ["fuse_views", "predict_patches", "predict_subject_views", "resolve_device", "threshold"]
