"""What every stage shares: loading params with a clean error, and turning domain errors into exit 1."""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import typer

from pipeline.config import ConfigError, Params, load_params

log = logging.getLogger("stages")

METHOD_HELP = "A method of the method table (pipeline.models.METHODS), as in dvc.yaml's matrix."
ParamsOption = typer.Option(Path("params.yaml"), "--params", exists=True, dir_okay=False,
                            help="The params file (params.yaml).")


def read_params(path: Path) -> Params:
    try:
        return load_params(path)
    except ConfigError as exc:
        log.error("%s", exc)
        raise typer.Exit(code=1) from None


@contextlib.contextmanager
def domain_errors(*kinds: type[Exception]) -> Iterator[None]:
    """Log the expected errors of a stage as one line and exit 1; anything else keeps its traceback."""
    try:
        yield
    except kinds as exc:
        log.error("%s", exc)
        raise typer.Exit(code=1) from None
