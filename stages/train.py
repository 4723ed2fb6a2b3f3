"""DVC stage `train@<method>`: fit one method on data/curated/train; writes the exported
generators and training state under --out-dir and --state-dir, losses to --losses-csv. Where the
method does not apply to the data set, every output holds a not-applicable record instead.
With train.nproc_per_node > 1 the command restarts itself under torchrun (DDP on this node)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stages.common import METHOD_HELP, ParamsOption, domain_errors, read_params


def train(
    method: Annotated[str, typer.Argument(help=METHOD_HELP)],
    data_dir: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Curated data set.")],
    out_dir: Annotated[Path, typer.Option(help="Exported generators (safetensors + config.json).")],
    state_dir: Annotated[Path, typer.Option(help="Resumable training state.")],
    losses_csv: Annotated[Path, typer.Option(help="Per-step losses, for dvc plots.")],
    samples_dir: Annotated[Path, typer.Option(help="Sample grids written during training.")],
    params: Path = ParamsOption,
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Train one translation method and record the run in MLflow (or record why it does not apply)."""
    from pipeline.distributed import exec_under_torchrun
    from pipeline.training import train_method

    cfg = read_params(params)
    # the same command on nproc_per_node processes; a no-op at 1 or inside torchrun's workers
    exec_under_torchrun(cfg.train.nproc_per_node, [
        "train", method, "--data-dir", str(data_dir), "--out-dir", str(out_dir), "--state-dir", str(state_dir),
        "--losses-csv", str(losses_csv), "--samples-dir", str(samples_dir), "--params", str(params),
        "--progress" if progress else "--no-progress"])
    with domain_errors(ValueError, FileNotFoundError):
        train_method(method, data_dir, out_dir=out_dir, state_dir=state_dir, losses_csv=losses_csv,
                     samples_dir=samples_dir, params=cfg, progress=progress)
