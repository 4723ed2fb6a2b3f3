"""`python -m stages <command>`: one typer app holding every DVC stage and user command."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import typer

from stages.ablate import ablate, ablation_report
from stages.bench import bench
from stages.curate import curate
from stages.download import download
from stages.evaluate import evaluate, train_segmenter
from stages.prepare import prepare
from stages.report import report
from stages.train import train
from stages.translate import translate, translate_folder

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="i2i pipeline stages (run by dvc.yaml) and user commands.")
app.command("prepare")(prepare)
app.command("curate")(curate)
app.command("train")(train)
app.command("train_segmenter")(train_segmenter)
app.command("translate")(translate)
app.command("translate-folder")(translate_folder)
app.command("evaluate")(evaluate)
app.command("report")(report)
app.command("ablate")(ablate)
app.command("ablation-report")(ablation_report)
app.command("bench")(bench)
app.command("download")(download)


@app.callback()
def _before_any_command() -> None:
    import torch

    # GAN weights, gradients and Adam moments can drift into denormal floats, which x86 CPUs
    # compute many times slower (a pix2pix checkpoint stepped at 1.4 s without and 0.13 s with
    # flushing, on a shared machine); flushing them to zero does not matter at these magnitudes.
    # Here rather than at import so that `--help` stays free of the torch import.
    torch.set_flush_denormal(True)


# Under DVC each stage's whole command is timed (loading, training, writing) for the report's
# provenance; the records are ignored by git and by DVC, so they never make a stage out of date.
TIMINGS_DIR = Path("reports/timings")


def _record_stage_time(stage: str, seconds: float) -> None:
    from pipeline.io import write_json

    name = stage.rpartition(":")[2]  # `dvc.yaml:train@pix2pix` outside the root dvc.yaml
    try:
        write_json(TIMINGS_DIR / f"{name}.json", {"stage": name, "seconds": round(seconds, 3),
                                                 "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    except OSError as exc:  # a read-only reports/ must not fail a stage that has done its work
        logging.getLogger("stages").warning("could not record the wall time of %s: %s", name, exc)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    stage, started = os.environ.get("DVC_STAGE"), time.perf_counter()
    try:
        app()
    except SystemExit as exc:  # click ends every command with SystemExit, 0 on success
        if stage and exc.code in (0, None):
            _record_stage_time(stage, time.perf_counter() - started)
        raise


if __name__ == "__main__":
    main()
