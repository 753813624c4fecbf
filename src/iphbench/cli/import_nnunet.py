"""`iphbench import-nnunet DATASET_DIR --out cohort.csv`: an nnU-Net v2 raw dataset as a cohort manifest."""

from __future__ import annotations

from pathlib import Path

import typer

from iphbench.cli._app import app, console, fail


@app.command(
    "import-nnunet", help="Write a cohort manifest for an nnU-Net v2 raw dataset (imagesTr/labelsTr)."
)
def import_nnunet_cmd(
    dataset_dir: Path = typer.Argument(
        ..., help="nnU-Net v2 raw dataset folder (dataset.json, imagesTr, labelsTr)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Cohort manifest to write (CSV)."),
    covariates: Path | None = typer.Option(
        None, "--covariates", help="CSV keyed by case id (subject/case/case_id) with site, age, sex."
    ),
    labels: str | None = typer.Option(
        None, "--labels", help="Label values that are hemorrhage, e.g. 1 or 1,2."
    ),
    include_test: bool = typer.Option(False, "--include-test", help="Also list imagesTs cases (no masks)."),
) -> None:
    from rich.markup import escape

    from iphbench.cli.validate import parse_labels
    from iphbench.io.nnunet import NnunetImportError, import_nnunet

    try:
        path = import_nnunet(
            dataset_dir,
            out,
            covariates_csv=covariates,
            label_values=parse_labels(labels),
            include_test=include_test,
        )
    except NnunetImportError as exc:
        raise fail(str(exc)) from None
    import pandas as pd

    n = len(pd.read_csv(path, dtype=str, keep_default_na=False))
    console.print(
        f"wrote {n} cases to [bold]{escape(str(path))}[/]; next: iphbench validate {escape(str(path))}"
    )
