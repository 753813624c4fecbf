"""Number formatting shared by the statistics tables, the CLI and the report."""

from __future__ import annotations

import math


def format_p(p: float) -> str:
    """``p < 0.001`` below 0.001, else ``p = 0.009`` (three decimals), ``p = n/a`` when undefined.

    Example:
        >>> format_p(0.00004), format_p(0.0091), format_p(float("nan"))
        ('p < 0.001', 'p = 0.009', 'p = n/a')
    """
    if p is None or not math.isfinite(p):
        return "p = n/a"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.3f}"


def format_num(x: float, digits: int = 3) -> str:
    """Fixed decimals for moderate numbers, scientific for very small or very large ones; ``n/a`` for NaN.

    Example:
        >>> format_num(0.12345), format_num(1.778e-6), format_num(float("nan"))
        ('0.123', '1.778e-06', 'n/a')
    """
    if x is None or not math.isfinite(x):
        return "inf" if x is not None and x == math.inf else "n/a"
    if x != 0 and (abs(x) < 10 ** (-digits) or abs(x) >= 1e6):
        return f"{x:.{digits}e}"
    return f"{x:.{digits}f}"
