"""The cohort manifest (``cohort.csv``): loading it and validating every row and file at once.

Columns ``subject, site, age, sex, image, mask`` (+ extra columns, kept). Paths are
relative to the manifest's folder or absolute; ``mask`` may be empty for scans without a
reference. Sex codes accepted (case-insensitive, surrounding spaces ignored): ``M``,
``male``, ``F``, ``female``; they are normalised to ``"M"``/``"F"`` because the paper's
regression (section 3.6, PM ~ IPH.vol + Age + Sex + Sitename) has a two-level sex factor.
The separator is read from the header line (comma, semicolon as a European Excel writes, or
tab); ``load_cohort`` is the one manifest reader of ``validate``, ``prepare``, ``study run``
and ``predict --manifest``. Subject ids name folders and files: ``subject_id_problem`` is the
one rule for them (``validate`` reports it, ``prepare`` refuses the subject).

Validation never stops at the first problem: ``validate_cohort`` returns a
``ValidationReport`` listing every issue with its subject and file, and a per-subject
summary (shape, spacing, reference hemorrhage volume in mL).

Example:
    >>> df = load_cohort("cohort.csv")  # doctest: +SKIP
    >>> report = validate_cohort(df, mask_labels=None)  # doctest: +SKIP
    >>> report.raise_if_errors()  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from rich.progress import track

from iphbench.io._checks import check_subject_files

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = ("subject", "site", "age", "sex", "image", "mask")
SEX_CODES: dict[str, str] = {"m": "M", "male": "M", "f": "F", "female": "F"}
AGE_RANGE: tuple[float, float] = (0.0, 120.0)  # plausible ages in years; outside is an error
DELIMITERS: dict[str, str] = {",": "comma", ";": "semicolon", "\t": "tab"}  # separators a manifest may use
SUBJECT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # a folder name on every OS, no '..', no '/'
SUBJECT_ID_MAX_CHARS = 128  # ids name files such as '<id>_2DAxi.nii.gz': stay far below the 255-byte limit
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")  # '63,5': a European decimal comma
SUMMARY_COLUMNS: tuple[str, ...] = (
    "subject",
    "site",
    "shape",
    "spacing",
    "ref_ml",
    "hu_min",
    "hu_max",
    "format",
)


class CohortError(ValueError):
    """The cohort manifest cannot be used; the message lists every problem found."""


@dataclass
class Issue:
    """One problem found in a cohort."""

    subject: str  # subject id ("" for problems with the whole manifest)
    file: str  # the file concerned: an image, a mask, or the manifest itself
    message: str  # what is wrong and what to do
    severity: str = "error"  # "error" (the cohort cannot be used) or "warning" (suspicious, usable)

    def __str__(self) -> str:
        who = f"[{self.subject}] " if self.subject else ""
        where = f" ({self.file})" if self.file and self.file not in self.message else ""
        return f"{self.severity}: {who}{self.message}{where}"


@dataclass
class ValidationReport:
    """Everything ``validate_cohort`` found: the issues and a per-subject summary."""

    issues: list[Issue] = field(default_factory=list)  # every problem, in manifest order
    summary: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(SUMMARY_COLUMNS)))

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    def raise_if_errors(self) -> None:
        """Raise a ``CohortError`` listing every error, if there is any."""
        if self.errors:
            lines = "\n  ".join(str(i) for i in self.errors)
            raise CohortError(f"the cohort has {len(self.errors)} error(s):\n  {lines}")

    def issues_frame(self) -> pd.DataFrame:
        """The issues as a table: subject, file, severity, message."""
        return pd.DataFrame(
            [(i.subject, i.file, i.severity, i.message) for i in self.issues],
            columns=["subject", "file", "severity", "message"],
        )


def normalise_sex(value: Any) -> str | None:
    """``"M"`` or ``"F"`` for an accepted sex code (see ``SEX_CODES``), else ``None``."""
    if not isinstance(value, str):
        return None
    return SEX_CODES.get(value.strip().lower())


def subject_id_problem(subject: str) -> str | None:
    """Why ``subject`` cannot be a subject id, or ``None`` when it can.

    Ids name folders (``prep/subjects/<id>/``) and files (``eval/<id>.csv``, predicted masks), so
    they are letters, digits, '.', '_' and '-', starting with a letter or digit: no path
    separators, no '..' that would write outside the study, no spaces. The one rule of
    ``validate`` (an error naming the row) and ``prepare`` (the subject fails).
    """
    if not SUBJECT_ID_PATTERN.match(subject) or len(subject) > SUBJECT_ID_MAX_CHARS:
        return (
            f"subject id {subject!r} cannot name a folder: use letters, digits, '.', '_' and '-' only "
            f"(starting with a letter or digit, at most {SUBJECT_ID_MAX_CHARS} characters)"
        )
    return None


def load_cohort(csv_path: str | Path) -> pd.DataFrame:
    """Read a cohort manifest into a DataFrame, without judging its content.

    The separator (comma, semicolon or tab) is taken from the header line: the one that splits
    it into the most required column names (``sniff_delimiter``); it is logged, and kept in
    ``df.attrs["delimiter"]``. ``subject`` and ``site`` become stripped strings, ``age`` a float
    (NaN where missing or not a number; the raw text is kept in ``df.attrs["raw_age"]`` for
    messages; in a semicolon- or tab-separated file a decimal comma, ``63,5``, is read as 63.5,
    the convention of the spreadsheets that write such files), ``sex`` ``"M"``/``"F"`` where the
    code is accepted (other codes are kept as written), and ``image``/``mask`` absolute path
    strings (``""`` where empty). Extra columns are kept as text. Call ``validate_cohort``
    before using the rows.

    Args:
        csv_path: the manifest (UTF-8, with or without a byte-order mark); relative paths in it
            are relative to its folder.

    Raises:
        CohortError: the file does not exist or is not a readable CSV.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise CohortError(f"cohort manifest not found: {csv_path}")
    try:
        delimiter = sniff_delimiter(_header_line(csv_path))
        df = pd.read_csv(
            csv_path,
            sep=delimiter,
            dtype=str,
            keep_default_na=False,
            skipinitialspace=True,
            encoding="utf-8-sig",
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise CohortError(f"cannot read cohort manifest {csv_path} as CSV: {exc}") from None
    except UnicodeDecodeError as exc:
        raise CohortError(
            f"cannot read cohort manifest {csv_path} as CSV: it is not UTF-8 text ({exc}); "
            "save it as UTF-8 (in Excel: 'CSV UTF-8')"
        ) from None
    log = logger.info if delimiter != "," else logger.debug
    log("cohort manifest %s: read as %s-separated", csv_path, DELIMITERS[delimiter])
    df.columns = [str(c).strip() for c in df.columns]
    df = df.astype(object).map(lambda v: v.strip() if isinstance(v, str) else v)
    root = csv_path.resolve().parent
    for col in ("image", "mask"):
        if col in df.columns:
            df[col] = [_resolve(v, root) for v in df[col]]
    raw_age: dict[Any, str] = {}
    if "age" in df.columns:
        raw_age = dict(zip(df.index, df["age"], strict=True))
        ages = df["age"]
        if delimiter != ",":
            ages = ages.map(
                lambda v: v.replace(",", ".") if isinstance(v, str) and _DECIMAL_COMMA.match(v) else v
            )
        df["age"] = pd.to_numeric(ages, errors="coerce").astype(float)
    if "sex" in df.columns:
        df["sex"] = [normalise_sex(v) or v for v in df["sex"]]
    df.attrs["source"] = str(csv_path.resolve())
    df.attrs["raw_age"] = raw_age
    df.attrs["delimiter"] = delimiter
    logger.debug("loaded %d rows from %s", len(df), csv_path)
    return df


def _header_line(csv_path: Path) -> str:
    """The first non-blank line of the file ("" for an empty file)."""
    with csv_path.open(encoding="utf-8-sig", newline="") as fh:
        for line in fh:
            if line.strip():
                return line
    return ""


def sniff_delimiter(header: str) -> str:
    """The separator of a manifest's header line: comma, semicolon or tab.

    The one that splits it into the most required column names (case-insensitive) wins, then
    the one giving the most fields; a comma when nothing tells (the message about the missing
    columns then shows the header). Quotes are honoured (``csv`` rules).
    """
    best, best_score = ",", (-1, -1)
    for delimiter in DELIMITERS:
        fields = [f.strip().lower() for f in next(csv.reader([header], delimiter=delimiter), [])]
        score = (sum(c in fields for c in REQUIRED_COLUMNS), len(fields))
        if score > best_score:
            best, best_score = delimiter, score
    return best


def missing_columns_problem(df: pd.DataFrame, required: Sequence[str] = REQUIRED_COLUMNS) -> str | None:
    """What is missing from the manifest's header (and what it holds instead), or ``None``.

    The one message of ``validate``, ``prepare`` and ``study run``. A header read as a single
    column whose name holds another separator is said to be one.
    """
    missing = [c for c in required if c not in df.columns]
    if not missing:
        return None
    columns = [str(c) for c in df.columns]
    text = f"missing required column(s): {', '.join(missing)}"
    if len(columns) == 1:
        text += (
            f"; the header has one column {columns[0]!r}: is the file comma-separated? iphbench reads "
            "comma-, semicolon- or tab-separated manifests"
        )
    else:
        text += f"; the header has {', '.join(repr(c) for c in columns)}"
        lower = {c.lower() for c in columns}
        if any(m in lower for m in missing):
            text += " (column names are case-sensitive: use lower case)"
    return f"{text} (a cohort needs {', '.join(REQUIRED_COLUMNS)}; mask may be empty per row)"


def _resolve(value: Any, root: Path) -> str:
    if not isinstance(value, str) or not value:
        return ""
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (root / path).resolve())


def validate_cohort(
    df: pd.DataFrame,
    mask_labels: Sequence[int] | None = None,
    check_files: bool = True,
    progress: bool = False,
) -> ValidationReport:
    """Check a cohort table and its files, collecting every problem (never stopping at the first).

    Table checks: empty cohort, missing required columns (named, with the header found), empty,
    duplicate or unusable subject ids (``subject_id_problem``), missing site, missing / non-numeric / implausible age, unknown sex code, missing
    image path. File checks (``check_files``): missing or unreadable files, 2D/4D data,
    NaN/inf voxels, absurd spacing (<= 0 or > 20 mm), intensities that do not look like HU,
    image/mask shape or affine mismatch, non-binary masks.

    Args:
        df: the manifest, as ``load_cohort`` returns it.
        mask_labels: label values counted as hemorrhage for every mask; ``None`` accepts
            {0, 1}/{0, 255} masks, or uses a row's own ``mask_labels`` column when present
            (space- or comma-separated ints, written by ``import_nnunet``).
        check_files: read every image and mask (slow for large cohorts).
        progress: show a rich progress bar while reading files.

    Returns:
        A ``ValidationReport`` (issues + summary with subject, site, shape, spacing, ref_ml).
    """
    manifest = str(df.attrs.get("source", "cohort manifest"))
    issues: list[Issue] = []
    if len(df) == 0:
        issues.append(Issue("", manifest, f"the cohort manifest {manifest} has no rows (empty cohort)"))
        return ValidationReport(issues=issues)
    missing = missing_columns_problem(df)
    if missing:
        issues.append(Issue("", manifest, missing))
    subjects = [_text(v) for v in df["subject"]] if "subject" in df.columns else [""] * len(df)
    labels = [s or f"row {i + 2}" for i, s in enumerate(subjects)]  # row numbers as in a spreadsheet
    issues += _table_issues(df, subjects, labels, manifest)
    rows: list[dict[str, Any]] = []
    if check_files and "image" in df.columns:
        indices: Any = range(len(df))
        if progress:
            indices = track(indices, description="checking scans", total=len(df))
        for i in indices:
            row = df.iloc[i]
            labels_i = mask_labels
            if labels_i is None and _text(row.get("mask_labels")):
                try:
                    labels_i = [int(v) for v in _text(row.get("mask_labels")).replace(",", " ").split()]
                except ValueError:
                    issues.append(
                        Issue(
                            labels[i], manifest, f"mask_labels {row['mask_labels']!r} is not a list of ints"
                        )
                    )
            try:
                found, info = check_subject_files(
                    labels[i], _text(row["image"]), _text(row.get("mask", "")), labels_i
                )
            except Exception as exc:  # a file no reader anticipated must not stop the other checks
                logger.debug("unexpected error checking %s", labels[i], exc_info=True)
                message = f"unexpected error reading the files: {exc!r}"
                found, info = [(labels[i], _text(row["image"]), message, "error")], {}
            issues += [Issue(*f) for f in found]
            rows.append({"subject": labels[i], "site": _text(row.get("site", "")), **info})
    else:
        rows = [
            {"subject": labels[i], "site": _text(df["site"].iloc[i]) if "site" in df else ""}
            for i in range(len(df))
        ]
    summary = pd.DataFrame(rows).reindex(columns=list(SUMMARY_COLUMNS))
    report = ValidationReport(issues=issues, summary=summary)
    logger.info(
        "validated %d subjects: %d errors, %d warnings", len(df), len(report.errors), len(report.warnings)
    )
    return report


def _table_issues(df: pd.DataFrame, subjects: list[str], labels: list[str], manifest: str) -> list[Issue]:
    issues: list[Issue] = []
    if "subject" in df.columns:
        seen: dict[str, list[int]] = {}
        for i, s in enumerate(subjects):
            if not s:
                issues.append(Issue(labels[i], manifest, f"row {i + 2} has no subject id"))
            else:
                seen.setdefault(s, []).append(i + 2)
                problem = subject_id_problem(s)
                if problem:
                    issues.append(Issue(s, manifest, f"row {i + 2}: {problem}"))
        for s, lines in seen.items():
            if len(lines) > 1:
                rows = ", ".join(map(str, lines))
                issues.append(
                    Issue(s, manifest, f"duplicate subject id {s!r} in rows {rows}; ids must be unique")
                )
    raw_age: dict[Any, Any] = df.attrs.get("raw_age", {})
    for i, idx in enumerate(df.index):
        who = labels[i]
        if "site" in df.columns and not _text(df["site"].iloc[i]):
            issues.append(Issue(who, manifest, "site is missing"))
        if "age" in df.columns:
            issues += _age_issues(df["age"].iloc[i], raw_age.get(idx), who, manifest)
        if "sex" in df.columns and normalise_sex(df["sex"].iloc[i]) is None:
            value = _text(df["sex"].iloc[i])
            what = f"unknown sex code {value!r}" if value else "sex is missing"
            issues.append(Issue(who, manifest, f"{what}; use M, F, male or female (case-insensitive)"))
        if "image" in df.columns and not _text(df["image"].iloc[i]):
            issues.append(Issue(who, manifest, "no image path"))
    return issues


def _age_issues(value: Any, raw: Any, who: str, manifest: str) -> list[Issue]:
    shown = _text(raw) if raw is not None else _text(value)
    try:
        age = float(value)
    except (TypeError, ValueError):
        age = float("nan")
    if age != age:  # NaN
        what = f"age {shown!r} is not a number" if shown and shown.lower() != "nan" else "age is missing"
        if _DECIMAL_COMMA.match(shown):  # in a comma-separated file a decimal comma is ambiguous
            what += f" (a decimal comma in a comma-separated file: write {shown.replace(',', '.')})"
        return [Issue(who, manifest, f"{what}; give the age in years")]
    if not AGE_RANGE[0] <= age <= AGE_RANGE[1]:
        return [Issue(who, manifest, f"age {age:g} is outside {AGE_RANGE[0]:g}..{AGE_RANGE[1]:g} years")]
    return []


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value).strip()
