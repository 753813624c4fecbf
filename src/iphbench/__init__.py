"""iphbench: multi-site benchmarking of IPH segmentation models on non-contrast head CT.

Reproduces Duarte et al., "Multi-site Benchmarking of Deep Learning Models for
Intraparenchymal Hemorrhage Segmentation on NCCT" (MIDL 2026) and extends it with
whole-brain evaluation, leave-one-site-out validation and volume agreement.
"""

from __future__ import annotations

__version__ = "0.1.0"
