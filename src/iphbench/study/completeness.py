"""Is a results table whole? The rows a study's ``metrics.csv`` must hold, and the checks that catch a cut file.

A results table (``<study>/metrics.csv``, or one subject's resume cache ``<study>/eval/<subject>.csv``)
can be cut short by a copy that ran out of disk or a sync tool that stopped half-way. pandas reads
such a file without complaint: the cut row gets NaN fields, and a cut at a row boundary leaves a
valid-looking table with fewer subjects, whose statistics are then silently wrong. So every reader
goes through two checks kept here:

* :func:`read_results_table`, the file itself: it ends with a line end (iphbench always writes
  one), every row has the header's number of fields, no key or label field is empty, numbers parse
  as numbers, and no (subject, style, orientation, protocol) appears twice;
* :func:`check_complete`, its rows against the study: exactly one row per test subject × style ×
  orientation × protocol that ``evaluate`` scores (:func:`subject_rows`; docs/formats.md).

:func:`read_metrics` applies both to ``metrics.csv``; ``evaluate`` applies both to each cache file
before trusting it (:mod:`iphbench.study.evaluate`).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from iphbench.config import StudyConfig
from iphbench.evaluation.scoring import METRICS
from iphbench.layout import StudyLayout
from iphbench.preprocessing.store import PatchStore
from iphbench.styles import study_styles

log = logging.getLogger(__name__)

#: The columns that identify a row: one row per subject × style × orientation × protocol.
KEY_COLUMNS: tuple[str, ...] = ("subject", "style", "orientation", "protocol")
#: Label columns that are never empty in a table iphbench wrote.
TEXT_COLUMNS: tuple[str, ...] = ("subject", "site", "style", "orientation", "protocol")
#: Number columns that are never empty (Dice and IoU are never NaN, docs/evaluation.md), when present.
NUMBER_COLUMNS: tuple[str, ...] = ("fold", "dice", "iou", "ref_ml", "pred_ml")
#: Number columns that may be empty (NaN: an undefined d_H95, precision or recall), never text. Not ``age``:
#: a cohort's age may be text, which the statistics read as missing.
#: Every metric of the metric table is one of the two (so a new metric's cells are checked too).
OPTIONAL_NUMBER_COLUMNS: tuple[str, ...] = tuple(
    dict.fromkeys(
        [
            *(m.name for m in METRICS if m.name not in NUMBER_COLUMNS),
            *("fov_diagonal_mm", "lesions_ref", "lesions_hit", "lesions_false"),
        ]
    )
)

#: How many missing or surplus rows a message names before it only counts them.
SHOWN = 5

Key = tuple[str, str, str, str]


class ResultsTableError(ValueError):
    """A results table is cut short, damaged, or lacks rows its study must have (the message names the file)."""


def scored_protocols(protocols: Sequence[str], lesion_patch: bool) -> list[str]:
    """The protocols a subject is scored under: ``paper`` only when it has a lesion patch.

    The paper protocol predicts and scores the lesion patches only (section 3.2); a
    hemorrhage-free subject has none, so it has no ``paper`` rows (docs/evaluation.md).
    """
    return [p for p in protocols if not (p == "paper" and not lesion_patch)]


def subject_rows(cfg: StudyConfig, lesion_patch: bool) -> list[tuple[str, str, str]]:
    """The (style, orientation, protocol) rows ``evaluate`` writes for one test subject, in its order.

    Styles are the study's grid (``study.grid.grid_styles``); a 2D style is scored in every
    trained view and 2.5D, an nnU-Net reference style only in the one orientation it predicts in
    (``3D`` or ``2D``, docs/nnunet.md).
    """
    styles = study_styles(cfg.models.names, cfg.train.recipes, cfg.train.recipe_models)
    protocols = scored_protocols(cfg.eval.protocols, lesion_patch)
    return [(s.name, o, p) for s in styles for p in protocols for o in s.orientations(cfg.views)]


def has_lesion_patch(store: PatchStore, subject: str) -> bool:
    """Whether the patch store holds a lesion patch of ``subject`` (the ``paper`` protocol's selection)."""
    return len(store.patch_origins(subject, "lesion")) > 0


def study_rows(study_dir: str | Path) -> tuple[list[Key] | None, str]:
    """Every (subject, style, orientation, protocol) row the study's ``metrics.csv`` must hold.

    Read from ``config.yaml`` (styles, views, protocols), ``folds.csv`` (the test subjects) and the
    patch store (which subjects have a lesion patch). Returns ``(None, why)`` when the folder is not
    a whole study (e.g. a ``metrics.csv`` copied alone): then only the file itself can be checked.
    """
    layout = StudyLayout(study_dir)
    for path in (layout.config_yaml, layout.folds_csv, layout.prep / "store.json"):
        if not path.is_file():
            return None, f"there is no {path.relative_to(layout.root)} beside it"
    try:
        cfg = layout.config()
        folds = layout.folds()
        store = PatchStore(layout.prep)
        test = [str(s) for s in folds.loc[folds["role"] == "test", "subject"]]
        return [(s, *row) for s in test for row in subject_rows(cfg, has_lesion_patch(store, s))], ""
    except (OSError, ValueError, KeyError) as exc:  # ConfigError and pandas' errors are ValueErrors
        return None, f"its study cannot be read ({exc})"


def rebuild_hint(study_dir: str | Path) -> str:
    """What to do about a damaged ``metrics.csv``: evaluate its study again (the caches make it cheap)."""
    layout = StudyLayout(study_dir)
    if layout.is_study():
        return f"run 'iphbench evaluate {layout.root}' to rebuild it"
    return "rebuild it with 'iphbench evaluate' on its study folder"


def read_results_table(
    path: str | Path,
    hint: str,
    required: Sequence[str] = KEY_COLUMNS,
    columns: Sequence[str] | None = None,
    dtype: Mapping[str, type] | None = None,
) -> pd.DataFrame:
    """Read a results table, refusing a file that was cut short or damaged.

    Args:
        path: ``metrics.csv`` or an ``eval/<subject>.csv`` cache.
        hint: what the user should do, appended to every message.
        required: columns the table must have.
        columns: when given, the exact columns, in order (a cache file must be what this version writes).
        dtype: passed to :func:`pandas.read_csv`; default subject and site as strings.

    Raises:
        ResultsTableError: the message names the file, the first bad line and what is wrong with it.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a BOM (a spreadsheet saved it) is no damage
    except UnicodeDecodeError as exc:
        raise ResultsTableError(
            f"{path} is not a readable metrics table (not UTF-8 text: {exc}); {hint}"
        ) from None
    if not text.strip():
        raise ResultsTableError(f"{path} is not a readable metrics table (the file is empty); {hint}")
    if "\x00" in text:  # a copy or sync that preallocated the file and stopped leaves zeros at its end
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ResultsTableError(
            f"{path} holds zero bytes from line {line} on: it was cut short by an interrupted copy; {hint}"
        )
    lines = _record_lines(path, text, hint)
    try:
        df = pd.read_csv(io.StringIO(text), dtype=dict(dtype or {"subject": str, "site": str}))
    except ValueError as exc:  # pandas' ParserError is one
        raise ResultsTableError(f"{path} is not a readable metrics table ({exc}); {hint}") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ResultsTableError(f"{path} lacks column(s) {missing}; it must hold {list(required)}; {hint}")
    if columns is not None and list(df.columns) != list(columns):
        raise ResultsTableError(
            f"{path} has columns {list(df.columns)}, not those this iphbench writes ({list(columns)}); {hint}"
        )
    _check_fields(path, df, lines, hint)
    _check_duplicates(path, df, lines, hint)
    return df


def check_complete(df: pd.DataFrame, path: str | Path, expected: Sequence[Key], hint: str) -> None:
    """Refuse a table whose (subject, style, orientation, protocol) rows are not exactly ``expected``.

    A file cut at a row boundary is still a well-formed CSV: only the rows it lacks reveal it.

    Raises:
        ResultsTableError: naming the count and the first few missing (or surplus) rows.
    """
    present = set(_keys(df))
    wanted = set(expected)
    missing = [k for k in expected if k not in present]
    if missing:
        raise ResultsTableError(
            f"{path} lacks {len(missing)} of the {len(expected)} rows its study must have (one per test subject "
            f"× style × orientation × protocol; hemorrhage-free subjects have no paper rows): "
            f"{_shown(missing)}. It was cut short or its evaluation did not finish; {hint}"
        )
    extra = [k for k in _keys(df) if k not in wanted]
    if extra:
        raise ResultsTableError(
            f"{path} holds {len(extra)} row(s) its study does not have: {_shown(extra)}. It comes from another "
            f"evaluation or config; {hint}"
        )


def read_metrics(
    path: str | Path, required: Sequence[str] = KEY_COLUMNS, warn_file_only: bool = True
) -> pd.DataFrame:
    """``metrics.csv`` read whole: the file checks always, and its rows against its study when there is one.

    Every reader of ``metrics.csv`` (``stats``, ``report``, the terminal summary of ``evaluate``) comes
    through here, so none of them reports on a cut table. Without a study folder around the file
    (no ``config.yaml``, ``folds.csv`` or patch store beside it) only the file is checked, and a
    warning says so unless ``warn_file_only`` is False (a reader for which the table is a hint, not a
    result: ``predict`` choosing its default style in a study shipped without ``prep/``).

    Raises:
        ResultsTableError: the file is cut short, damaged, or lacks rows (the message names it).
    """
    path = Path(path)
    hint = rebuild_hint(path.parent)
    df = read_results_table(path, hint, required, dtype={"subject": str, "site": str, "sex": str})
    expected, why = study_rows(path.parent)
    if expected is None:
        log.log(
            logging.WARNING if warn_file_only else logging.DEBUG,
            "%s: %s, so only the file itself was checked (whole rows, no empty fields), not that it holds every "
            "test subject × style × orientation × protocol of its study",
            path,
            why,
        )
    else:
        check_complete(df, path, expected, hint)
    return df


def _record_lines(path: Path, text: str, hint: str) -> list[int]:
    """The file line on which each data row starts; refuses a file that ends mid-row or a row of another width."""
    reader = csv.reader(io.StringIO(text, newline=""))
    records: list[tuple[int, list[str]]] = []
    previous = 0
    try:
        for record in reader:
            if record:  # a blank line yields []: pandas skips it too
                records.append((previous + 1, record))
            previous = reader.line_num
    except csv.Error as exc:
        raise ResultsTableError(
            f"{path} is not a well-formed CSV file (line {previous + 1}: {exc}); {hint}"
        ) from None
    width = len(records[0][1])
    if not text.endswith(("\n", "\r")):  # iphbench ends every file with a line end: this one was cut
        raise ResultsTableError(_cut_message(path, *records[-1], width, hint))
    for start, record in records[1:]:
        if len(record) != width:
            raise ResultsTableError(
                f"{path}: line {start} has {len(record)} of {width} fields: the file is damaged; {hint}"
            )
    return [start for start, _ in records[1:]]


def _cut_message(path: Path, line: int, record: list[str], width: int, hint: str) -> str:
    if len(record) < width:
        what = f"line {line} has {len(record)} of {width} fields"
    else:
        value = record[-1] if len(record[-1]) <= 40 else record[-1][:40] + "..."
        what = f"line {line} has no line end, so its last value {value!r} may be cut"
    return f"{path} ends mid-row ({what}): it was truncated; {hint}"


def _check_fields(path: Path, df: pd.DataFrame, lines: list[int], hint: str) -> None:
    """Refuse empty labels and keys, and number fields that are empty or not numbers."""
    problems: list[tuple[int, str]] = []
    for col in TEXT_COLUMNS:
        if col in df.columns:
            empty = df[col].isna() | (df[col].astype(object).map(lambda v: str(v).strip()) == "")
            problems += [(int(i), f"has no {col}") for i in df.index[empty]]
    for col in (*NUMBER_COLUMNS, *OPTIONAL_NUMBER_COLUMNS):
        if col not in df.columns:
            continue
        numbers = pd.to_numeric(df[col], errors="coerce")
        text = df[col].notna() & numbers.isna()
        problems += [(int(i), f"holds {df[col][i]!r} in column {col}, not a number") for i in df.index[text]]
        if col in NUMBER_COLUMNS:
            problems += [(int(i), f"has no {col}") for i in df.index[df[col].isna()]]
    if problems:
        problems.sort()
        i, what = problems[0]
        more = f" (and {len(problems) - 1} more such field(s))" if len(problems) > 1 else ""
        raise ResultsTableError(
            f"{path}: line {_line(lines, i)} {what}{more}: the file is damaged or cut; {hint}"
        )


def _check_duplicates(path: Path, df: pd.DataFrame, lines: list[int], hint: str) -> None:
    if not all(c in df.columns for c in KEY_COLUMNS):
        return
    twice = df.duplicated(list(KEY_COLUMNS), keep="first")
    if twice.any():
        i = int(df.index[twice][0])
        raise ResultsTableError(
            f"{path}: line {_line(lines, i)} repeats the row {_key_text(_keys(df.loc[[i]])[0])} "
            f"({int(twice.sum())} repeated row(s)): the file was put together wrongly; {hint}"
        )


def _keys(df: pd.DataFrame) -> list[Key]:
    cols = [df[c].astype(object).map(str) for c in KEY_COLUMNS]
    return list(zip(*cols, strict=True))


def _line(lines: list[int], row: int) -> int:
    return lines[row] if row < len(lines) else row + 2


def _key_text(key: Key) -> str:
    return "/".join(key)


def _shown(keys: Sequence[Key]) -> str:
    text = ", ".join(_key_text(k) for k in keys[:SHOWN])
    return text + (f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else "")
