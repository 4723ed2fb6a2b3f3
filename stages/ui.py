"""User command `ui`: the MLflow UI over the project's store, opened on the experiment's runs table."""
from __future__ import annotations

from pathlib import Path

import typer

from stages.common import ParamsOption, read_params


def ui(
    host: str = typer.Option("127.0.0.1", help="Address to serve on (loopback: this machine only)."),
    port: int = typer.Option(5000, help="Port to serve on."),
    params: Path = ParamsOption,
) -> None:
    """Serve the MLflow UI over the project's store and print the link to the experiment's runs table."""
    from pipeline.tracking import serve_ui

    raise typer.Exit(code=serve_ui(read_params(params).train.mlflow_experiment, host, port))
