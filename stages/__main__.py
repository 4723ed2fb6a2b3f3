"""`python -m stages <command>`: one typer app holding every DVC stage and user command."""
from __future__ import annotations

import logging
import os
import time

import typer

from pipeline.io import record_stage_time
from stages.ablate import ablate, ablation_report
from stages.bench import bench
from stages.curate import curate
from stages.download import download
from stages.evaluate import evaluate, train_segmenter
from stages.export import export
from stages.import_checkpoint import import_checkpoint
from stages.parity import parity
from stages.prepare import prepare
from stages.report import report
from stages.select import select
from stages.train import train
from stages.translate import translate, translate_folder
from stages.plots import plots_template
from stages.ui import ui

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="i2i pipeline stages (run by dvc.yaml) and user commands.")
app.command("prepare")(prepare)
app.command("curate")(curate)
app.command("train")(train)
app.command("train_segmenter")(train_segmenter)
app.command("translate")(translate)
app.command("translate-folder")(translate_folder)
app.command("evaluate")(evaluate)
app.command("select")(select)
app.command("report")(report)
app.command("ablate")(ablate)
app.command("ablation-report")(ablation_report)
app.command("bench")(bench)
app.command("parity")(parity)
app.command("download")(download)
app.command("ui")(ui)
app.command("plots_template")(plots_template)
app.command("import-checkpoint")(import_checkpoint)
app.command("export")(export)


@app.callback()
def _before_any_command() -> None:
    import torch

    # GAN weights, gradients and Adam moments drift into denormal floats, which x86 CPUs compute many
    # times slower (a pix2pix step: 1.4 s without flushing, 0.13 s with); zero does not matter at these
    # magnitudes. Here rather than at import so that `--help` stays free of the torch import.
    torch.set_flush_denormal(True)


def main() -> None:
    # a worker of torchrun (train.nproc_per_node > 1, or torchrun by hand): rank 0 speaks for the
    # job, the others log warnings and errors only, each line marked with its rank
    rank = os.environ.get("RANK") if "LOCAL_RANK" in os.environ else None
    marker = f"[rank {rank}] " if rank else ""
    logging.basicConfig(level=logging.INFO if rank in (None, "0") else logging.WARNING,
                        format=f"%(asctime)s {marker}%(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    stage, started = os.environ.get("DVC_STAGE"), time.perf_counter()
    timed = bool(stage) and rank in (None, "0")
    try:
        if rank is None:
            app()
        else:  # torchrun's summary of a failed job then carries the failing rank's traceback
            from torch.distributed.elastic.multiprocessing.errors import record

            record(app)()  # returns where app() ends in SystemExit(0)
            if timed:
                record_stage_time(stage, time.perf_counter() - started)
    except SystemExit as exc:  # click ends every command with SystemExit, 0 on success
        if timed and exc.code in (0, None):
            record_stage_time(stage, time.perf_counter() - started)
        raise


if __name__ == "__main__":
    main()
