"""Number and cell formatting shared by the statistics tables, the table writers, the CLI and the report.

Every table that iphbench writes as text (Markdown, LaTeX, HTML, the terminal) turns its cells
into strings through :func:`format_cell` or :func:`text_frame`, so a missing value is always
written ``n/a``. Never use ``DataFrame.astype(str)`` for this: under pandas 3 it keeps NaN and
None as missing values in a string column, and joining such a row raises ``TypeError``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

MISSING = "n/a"


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
        return "inf" if x is not None and x == math.inf else MISSING
    if x != 0 and (abs(x) < 10 ** (-digits) or abs(x) >= 1e6):
        return f"{x:.{digits}e}"
    return f"{x:.{digits}f}"


def is_missing(value: object) -> bool:
    """True for None, NaN, ``pd.NA`` and ``NaT`` (scalars only; containers are never missing)."""
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or array: not a missing scalar
        return False


def format_cell(value: object, digits: int = 4) -> str:
    """Text of one table cell: missing → ``n/a``; floats with ``digits`` significant digits; the rest ``str``.

    Example:
        >>> format_cell(float("nan")), format_cell(None), format_cell(0.123456), format_cell(3), format_cell("A")
        ('n/a', 'n/a', '0.1235', '3', 'A')
    """
    if is_missing(value):
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) or (hasattr(value, "dtype") and value.dtype.kind == "f"):
        v = float(value)  # type: ignore[arg-type]
        return f"{v:.{digits}g}" if math.isfinite(v) else ("inf" if v > 0 else "-inf")
    return str(value)


def text_frame(df: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """Every cell of ``df`` as text by :func:`format_cell` (object dtype; no missing values remain)."""
    return pd.DataFrame(
        {col: [format_cell(v, digits) for v in df[col].tolist()] for col in df.columns},
        index=df.index,
        dtype=object,
    )


def text_labels(values: Iterable[object], missing: str = "") -> list[str]:
    """Labels (site, sex, style, ...) as plain strings, a missing value as ``missing``."""
    return [missing if is_missing(v) else str(v) for v in values]


def markdown_table(df: pd.DataFrame, digits: int = 4, index: bool = False) -> str:
    """A GitHub-flavoured Markdown table of ``df``; every cell through :func:`format_cell`.

    Example:
        >>> print(markdown_table(pd.DataFrame({"site": ["A", None], "p": [0.01, float("nan")]})), end="")
        | site | p |
        |---|---|
        | A | 0.01 |
        | n/a | n/a |
    """
    if df.empty:
        return "_(none)_\n"
    shown = text_frame(df.reset_index() if index else df, digits)
    cols = [str(c) for c in shown.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(row) + " |" for row in shown.itertuples(index=False, name=None)]
    return "\n".join(lines) + "\n"
