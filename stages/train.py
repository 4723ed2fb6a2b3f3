"""DVC stage `train@<method>`: fit one method on data/curated/train; writes the exported
generators and training state under --out-dir and --state-dir, losses to --losses-csv. Where the
method does not apply to the data set, every output holds a not-applicable record instead."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Annotated

import typer

from stages.common import ParamsOption, domain_errors, read_params

log = logging.getLogger("stages.train")


def pick_device(name: str):
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device is 'cuda' but no CUDA device is available")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def train(
    method: Annotated[str, typer.Argument(help="pix2pix | cyclegan | bicyclegan")],
    data_dir: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Curated data set.")],
    out_dir: Annotated[Path, typer.Option(help="Exported generators (safetensors + config.json).")],
    state_dir: Annotated[Path, typer.Option(help="Resumable training state.")],
    losses_csv: Annotated[Path, typer.Option(help="Per-step losses, for dvc plots.")],
    samples_dir: Annotated[Path, typer.Option(help="Sample grids written during training.")],
    params: Path = ParamsOption,
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Train one translation method and record the run in MLflow (or record why it does not apply)."""
    import torch

    from pipeline.ablations import run_labels
    from pipeline.applicability import NOT_APPLICABLE, method_not_applicable
    from pipeline.checkpoint import export_networks
    from pipeline.config import METHODS
    from pipeline.data.datasets import BatchSampler, SamplerSpec, fixed_batch, training_arrays
    from pipeline.data.store import read_info
    from pipeline.io import atomic_dir, write_json
    from pipeline.models import build_model
    from pipeline.tracking import MlflowTracker, dvc_experiment
    from pipeline.training import LoopSettings, fit, resumable_run_id, write_not_trained

    cfg = read_params(params)
    if method not in METHODS:
        log.error("unknown method %r; expected one of %s", method, list(METHODS))
        raise typer.Exit(code=1)
    with domain_errors(ValueError, FileNotFoundError):
        info = read_info(data_dir)  # a missing or broken store fails here, loudly
    reason = method_not_applicable(info, method)
    if reason is not None:  # not an error: this kind of data cannot train the method
        write_not_trained(reason, dataset=info["dataset"], method=method, out_dir=out_dir, state_dir=state_dir,
                          samples_dir=samples_dir, losses_csv=losses_csv)
        log.warning("%s not trained: %s", method, reason)
        return
    for folder in (state_dir, samples_dir):  # DVC keeps these (persist): drop the record of an earlier data set
        (folder / NOT_APPLICABLE).unlink(missing_ok=True)
    with domain_errors(ValueError, FileNotFoundError):
        device = pick_device(cfg.train.device)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        torch.manual_seed(cfg.seed)
        schedule = cfg.schedule(method)
        data = training_arrays(data_dir, "train", method)
        spec = SamplerSpec(image_size=cfg.image_size, load_size=cfg.train.load_size, batch_size=schedule.batch_size,
                           flip=cfg.train.flip, seed=cfg.seed, paired=method != "cyclegan",
                           data_paired=data.paired, a_is_labels=data.a_is_labels)
        sampler = BatchSampler(data.a, data.b, spec, device)
        sample_batch = fixed_batch(data_dir, "val", 4, device)
    config = {"method": method, "params": dataclasses.asdict(cfg)}
    model = build_model(method, cfg, device, seed=cfg.seed)
    # run name and tags tell a study's rows apart in the MLflow UI (study, row, changed params)
    run_name, labels = run_labels(method, cfg, dvc_experiment())
    tags = {"method": method, "dataset": cfg.data.source, "device": str(device), **labels}
    tracker = MlflowTracker(cfg.train.mlflow_experiment, run_name=run_name, tags=tags,
                            run_id=resumable_run_id(state_dir, config))
    tracker.log_params({"method": method, **cfg.as_flat_dict()})
    loop = LoopSettings(cfg.train.log_every, cfg.train.sample_every, cfg.train.checkpoint_every, progress)
    status = "FAILED"
    try:
        result = fit(model, sampler, schedule, loop, tracker, config=config, state_dir=state_dir,
                     losses_csv=losses_csv, samples_dir=samples_dir, sample_batch=sample_batch)
        with atomic_dir(out_dir) as tmp:
            export_networks(tmp, model.exported_networks(), {**config, "mlflow_run_id": tracker.run_id})
            write_json(tmp / "train_summary.json", {**dataclasses.asdict(result), "device": str(device),
                                                    "mlflow_run_id": tracker.run_id})
        for name in model.exported_networks():
            tracker.log_artifact(out_dir / f"{name}.safetensors", "model")
        tracker.log_artifact(out_dir / "config.json", "model")
        status = "FINISHED"
        log.info("%s: %d steps (%d resumed) in %.0f s, %.1f images/s", method, result.steps,
                 result.resumed_from, result.seconds, result.images_per_second)
    finally:
        tracker.finish(status)
