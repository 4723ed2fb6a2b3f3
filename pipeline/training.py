"""The training loop shared by every method (schedule, logging, samples, checkpoints, resume) and
`train_method`, the `train@<method>` stage, in one process or in each of torchrun's (DDP)."""
from __future__ import annotations

import csv
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR

from pipeline.ablations import method_params, run_labels
from pipeline.applicability import NOT_APPLICABLE, method_not_applicable, write_not_applicable
from pipeline.checkpoint import (STATE_FILE, TrainingState, export_networks, read_training_state,
                                 restore_training_state, rng_state, save_training_state)
from pipeline.config import Params, ScheduleConfig
from pipeline.sampler import BatchSampler, SamplerSpec, fixed_batch, placed_sampler, training_arrays
from pipeline.data.store import read_info
from pipeline.distributed import Ranks, check_batch_split, is_main_process, join, leave, replicate
from pipeline.finetune import PRETRAINED_RECORD, init_record, load_init, use_pretrained
from pipeline.io import atomic_dir, atomic_file, write_json
from pipeline.kept import collect_kept, keep_checkpoint
from pipeline.models import build_model, method_spec
from pipeline.models.base import Batch, Translator
from pipeline.tracking import MlflowTracker, NullTracker, Tracker, dvc_experiment

log = logging.getLogger(__name__)


def linear_decay(schedule: ScheduleConfig):
    """LR factor: 1 for `iters` steps, then linear to 0 over `iters_decay` (CycleGAN's schedule,
    per step instead of per epoch: 1 - max(0, t - iters) / (iters_decay + 1))."""

    def factor(step: int) -> float:
        return 1.0 - max(0, step - schedule.iters) / float(schedule.iters_decay + 1)

    return factor


@dataclass(frozen=True)
class LoopSettings:
    log_every: int
    sample_every: int
    checkpoint_every: int
    progress: bool = True
    keep_every: int = 0  # train.keep_every: export the networks every K steps for `select` (0: never)


@dataclass(frozen=True)
class FitResult:
    steps: int
    resumed_from: int
    seconds: float
    images_per_second: float
    last_losses: dict[str, float]


def sample_rows(model: Translator, batch: Batch) -> torch.Tensor:
    """Input, output, target for each image of a fixed batch, (3N, 3, H, W) in [-1, 1], in the first
    direction the model maps: B -> A rows for pix2pix trained b_to_a."""
    direction = model.directions()[0]
    source, target = (batch.a, batch.b) if direction == "a_to_b" else (batch.b, batch.a)
    with torch.no_grad():
        fake = model.translate(source, direction)
    return torch.stack([source, fake.float(), target], dim=1).flatten(0, 1)  # (3N, 3, H, W)


def save_grid(rows: torch.Tensor, path: Path) -> Path:
    """`sample_rows` as a PNG grid, three images a row (values mapped from [-1, 1])."""
    from torchvision.utils import save_image  # here: importing torchvision costs each training process seconds

    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(rows.add(1).div(2).clamp(0, 1).cpu(), path, nrow=3, padding=2)
    return path


def sample_grid(model: Translator, batch: Batch, path: Path) -> Path:
    """Rows of input | output | target for a fixed batch, written to `path`."""
    return save_grid(sample_rows(model, batch), path)


LOGGED_ALWAYS = ("step", "lr", "images_per_s")  # the columns of every method's loss CSV, besides its losses


def write_not_trained(reason: str, *, dataset: str, method: str, out_dir: Path, state_dir: Path,
                      samples_dir: Path, losses_csv: Path) -> None:
    """The outputs of a training that does not apply to the data set: each folder holds only the
    not-applicable record (replaced whole, so no stale weights or state remain), the loss CSV only
    the columns every method logs."""
    for folder in (out_dir, state_dir, samples_dir):
        with atomic_dir(folder) as tmp:
            write_not_applicable(tmp, reason, dataset=dataset, method=method)
    with atomic_file(losses_csv) as tmp:
        tmp.write_text(",".join(LOGGED_ALWAYS) + "\n")


class LossLog:
    """Per-step losses as CSV (for `dvc plots`); on resume, rows past the resumed step are dropped."""

    def __init__(self, path: Path, resume_step: int):
        self.path = path
        self.fields: list[str] | None = None
        rows: list[dict[str, str]] = []
        if resume_step > 0 and path.exists():
            with path.open() as f:
                reader = csv.DictReader(f)
                self.fields = reader.fieldnames and list(reader.fieldnames)
                rows = [r for r in reader if int(r["step"]) <= resume_step]
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("w", newline="")
        if self.fields:
            self._writer = csv.DictWriter(self._file, fieldnames=self.fields)
            self._writer.writeheader()
            self._writer.writerows(rows)

    def write(self, row: dict[str, float]) -> None:
        if self.fields is None:
            self.fields = list(row)
            self._writer = csv.DictWriter(self._file, fieldnames=self.fields)
            self._writer.writeheader()
        self._writer.writerow({k: row.get(k, "") for k in self.fields})
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def fit(model: Translator, sampler: BatchSampler, schedule: ScheduleConfig, loop: LoopSettings,
        tracker: Tracker, *, config: dict[str, Any], state_dir: Path, losses_csv: Path,
        samples_dir: Path, sample_batch: Batch, ranks: Ranks = Ranks()) -> FitResult:
    """Train `model` for schedule.total_steps, resuming from `state_dir/last.pt` when its config matches.

    Under DDP every rank calls this alike (`ranks`; the model replicated): each trains on its share
    of the sampler's global batch; rank 0 alone reads the state (and sends it to the others) and
    writes the state (with every rank's image pools and RNG states), the loss CSV (losses averaged
    over the ranks), the samples and the records in `tracker`.
    """
    optimizers = model.optimizers()
    schedulers = {name: LambdaLR(opt, linear_decay(schedule)) for name, opt in optimizers.items()}
    networks = model.networks()
    state_path = state_dir / STATE_FILE
    start, earlier_seconds = 0, 0.0
    start_counted = 0  # the first step whose time is known
    # rank 0's view of the state, whatever the others' disks hold, so that all resume alike
    state = ranks.broadcast(read_training_state(state_path) if ranks.is_main and state_path.exists() else None)
    if state is not None:
        if state.matches(config):
            model.load_extra_state(restore_training_state(state, networks=networks, optimizers=optimizers,
                                                          schedulers=schedulers, rank=ranks.rank))
            start = state.step
            if state.seconds is not None:
                earlier_seconds = state.seconds
            else:  # an older checkpoint: the speed of this session alone
                start_counted = start
            log.info("resuming from %s at step %d", state_path, start)
        else:
            log.info("%s was written with other params; starting afresh", state_path)
    total = schedule.total_steps
    for net in networks.values():
        net.train()
    losses_log = LossLog(losses_csv, start) if ranks.is_main else None
    bar = None
    if loop.progress and ranks.is_main:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=start, desc="train", unit="step", mininterval=2.0, dynamic_ncols=True)
    t0 = time.perf_counter()
    window_start, window_steps = t0, 0
    last: dict[str, float] = {}
    step = start
    try:
        while step < total:
            losses = model.train_step(ranks.share(sampler.batch(step)))
            for sched in schedulers.values():
                sched.step()
            step += 1
            window_steps += 1
            # step 1 too: the curve then starts at the untrained losses, not after the first fall
            if step % loop.log_every == 0 or step == 1 or step == total:
                now = time.perf_counter()
                ips = window_steps * sampler.spec.batch_size / max(now - window_start, 1e-9)  # the global batch
                window_start, window_steps = now, 0
                last = ranks.mean_losses(losses)  # one device sync per log line
                lr = next(iter(optimizers.values())).param_groups[0]["lr"]
                if losses_log is not None:
                    losses_log.write({"step": step, **last, "lr": lr, "images_per_s": ips})
                tracker.log_metrics({**last, "lr": lr, "images_per_s": ips}, step=step)
                if bar is not None:
                    bar.set_postfix({k: f"{v:.3f}" for k, v in last.items()} | {"img/s": f"{ips:.1f}"}, refresh=False)
            if step % loop.sample_every == 0 or step == total:
                # every rank translates, rank 0 writes: in train mode (pix2pix's dropout at test) batch
                # norm over the global batch is a collective
                rows = sample_rows(model, sample_batch)
                if ranks.is_main:
                    tracker.log_artifact(save_grid(rows, samples_dir / f"step_{step:06d}.png"), "samples")
                for net in networks.values():
                    net.train()
            if loop.keep_every and step % loop.keep_every == 0 and step < total and ranks.is_main:
                keep_checkpoint(state_dir, step, model.exported_networks(), config)
            if step % loop.checkpoint_every == 0 or step == total:
                # each rank's pools and RNG streams, so that every rank resumes exactly
                per_rank = None
                if ranks.distributed:
                    per_rank = ranks.gather({"extra": model.extra_state(), "rng": rng_state()})
                if ranks.is_main:
                    save_training_state(state_path, step=step, config=config, networks=networks,
                                        optimizers=optimizers, schedulers=schedulers, extra=model.extra_state(),
                                        run_id=tracker.run_id, seconds=earlier_seconds + time.perf_counter() - t0,
                                        ranks=per_rank)
            if bar is not None:
                bar.update(1)
    finally:
        if losses_log is not None:
            losses_log.close()
        if bar is not None:
            bar.close()
    seconds = earlier_seconds + time.perf_counter() - t0  # over every session of this run
    counted = step - start_counted
    return FitResult(steps=step, resumed_from=start, seconds=seconds,
                     images_per_second=counted * sampler.spec.batch_size / max(seconds, 1e-9), last_losses=last)


def _start_from(model: Translator, method: str, folder: Path, params: Params, state_dir: Path,
                config: dict[str, Any]) -> dict[str, Any]:
    """train.init_from: the record that goes into the training config (and so the checkpoint); the
    folder's weights are loaded unless a resumable state of this same config exists (it holds them)."""
    record = init_record(folder, method)
    record["fresh"] = sorted(set(model.networks()) - set(record["sha256"]))
    section = method_spec(method).section
    if resumable_state(state_dir, config | {"init_from": record}) is not None:
        log.info("resuming: the training state holds the networks that started from %s", folder)
    else:
        load_init(model, folder, section, dataclasses.asdict(getattr(params, section)))
    return record


def resumable_state(state_dir: Path, config: dict[str, Any]) -> TrainingState | None:
    """The readable training state in `state_dir` saved with `config` (fit resumes from it), or None."""
    path = state_dir / STATE_FILE
    if not path.exists():
        return None
    try:
        state = read_training_state(path)
    except ValueError:
        return None
    return state if state.matches(config) else None


def resumable_run_id(state_dir: Path, config: dict[str, Any]) -> str | None:
    """The MLflow run of an interrupted training with the same config, so a resume continues it."""
    state = resumable_state(state_dir, config)
    return state.run_id if state is not None else None


def train_method(method: str, curated: Path, *, out_dir: Path, state_dir: Path, losses_csv: Path, samples_dir: Path,
                 params: Params, progress: bool) -> FitResult | None:
    """The `train@<method>` stage: fit `method` on curated/train, export its generators to `out_dir`
    and record the run in MLflow; or, where the method is switched off in params or does not apply to
    the data set, write the not-applicable record, with the reason, in every output (returns None).
    With `<method>.pretrained` set, that model folder stands in for the training (returns None).

    Under torchrun each process calls this: one DDP training, whose outputs and run rank 0 writes.
    """
    spec = method_spec(method)
    info = read_info(curated)  # a missing or broken store fails here, loudly
    reason = spec.switched_off(params) or method_not_applicable(info, method, spec.paired)
    main = is_main_process()
    if reason is not None:  # not an error: switched off, or this kind of data cannot train the method
        if main:
            write_not_trained(reason, dataset=info["dataset"], method=method, out_dir=out_dir, state_dir=state_dir,
                              samples_dir=samples_dir, losses_csv=losses_csv)
            log.warning("%s not trained: %s", method, reason)
        return None
    pretrained = spec.config(params).pretrained
    if pretrained:  # a model from elsewhere (import-checkpoint) stands in for the training
        if main:
            use_pretrained(method, Path(pretrained), out_dir=out_dir, state_dir=state_dir, samples_dir=samples_dir)
            with atomic_file(losses_csv) as tmp:
                tmp.write_text(",".join(LOGGED_ALWAYS) + "\n")
        return None
    ranks = join(params.train.device, params.train.collective_timeout_s)
    try:
        return _train(method, curated, out_dir=out_dir, state_dir=state_dir, losses_csv=losses_csv,
                      samples_dir=samples_dir, params=params, progress=progress, ranks=ranks)
    finally:
        leave(ranks)


def _train(method: str, curated: Path, *, out_dir: Path, state_dir: Path, losses_csv: Path, samples_dir: Path,
           params: Params, progress: bool, ranks: Ranks) -> FitResult:
    """train_method's training, on this rank of `ranks`."""
    spec = method_spec(method)
    if ranks.is_main:
        for folder in (state_dir, samples_dir):  # DVC keeps these (persist): drop the records of an earlier run
            (folder / NOT_APPLICABLE).unlink(missing_ok=True)
            (folder / PRETRAINED_RECORD).unlink(missing_ok=True)
    device = ranks.device
    if params.train.threads:
        torch.set_num_threads(params.train.threads)
    # train.seed, else seed (seeds for error bars keep the data); each rank its own dropout draws,
    # rank 0's are one process's
    torch.manual_seed(params.train_seed + ranks.rank)
    schedule = params.schedule(spec.section)
    check_batch_split(schedule.batch_size, ranks.world_size, f"{spec.section}.batch_size", spec.batch_multiple)
    data = training_arrays(curated, "train", method, spec.paired)
    # every rank draws the whole global batch (a pure function of seed and step) and keeps its rows
    sampler_spec = SamplerSpec(image_size=params.image_size, load_size=params.train.load_size,
                               batch_size=schedule.batch_size, flip=params.train.flip, seed=params.train_seed,
                               paired=spec.paired, data_paired=data.paired, a_is_labels=data.a_is_labels)
    sampler = placed_sampler(data.a, data.b, sampler_spec, device, params.train.device_data_fraction)
    sample_batch = fixed_batch(curated, "val", 4, device)
    config: dict[str, Any] = {"method": method, "params": dataclasses.asdict(params)}
    if ranks.distributed:  # per-rank pools and RNG streams resume only at the same number of ranks
        config["world_size"] = ranks.world_size
    model = build_model(method, params, device, seed=params.train_seed, rank=ranks.rank)
    if params.train.init_from:
        config["init_from"] = _start_from(model, method, Path(params.train.init_from), params, state_dir, config)
    replicate(model, ranks, params.train.sync_batchnorm)  # after any loaded weights: DDP sends rank 0's
    # run name and tags tell a study's rows apart in the MLflow UI (study, row, changed params)
    run_name, labels = run_labels(method, params, dvc_experiment())
    tags = {"method": method, "dataset": params.data.source, "device": str(device), **labels}
    if ranks.distributed:
        tags["world_size"] = str(ranks.world_size)
    if "init_from" in config:
        tags |= {"init_from": config["init_from"]["path"], "init_fresh": ",".join(config["init_from"]["fresh"])}
    # one run, rank 0's: the others record nothing
    tracker: Tracker = NullTracker()
    if ranks.is_main:
        tracker = MlflowTracker(params.train.mlflow_experiment, run_name=run_name, tags=tags,
                                run_id=resumable_run_id(state_dir, config))
    tracker.log_params({"method": method, **method_params(params, method)})  # not the other methods' params
    loop = LoopSettings(params.train.log_every, params.train.sample_every, params.train.checkpoint_every, progress,
                        keep_every=params.train.keep_every)
    status = "FAILED"
    try:
        result = fit(model, sampler, schedule, loop, tracker, config=config, state_dir=state_dir,
                     losses_csv=losses_csv, samples_dir=samples_dir, sample_batch=sample_batch, ranks=ranks)
        if ranks.is_main:
            with atomic_dir(out_dir) as tmp:
                export_networks(tmp, model.exported_networks(), {**config, "mlflow_run_id": tracker.run_id})
                collect_kept(state_dir, tmp, config, result.steps)  # train.keep_every's, for `select`
                write_json(tmp / "train_summary.json", {**dataclasses.asdict(result), "device": str(device),
                                                        "world_size": ranks.world_size,
                                                        "mlflow_run_id": tracker.run_id})
            for name in model.exported_networks():
                tracker.log_artifact(out_dir / f"{name}.safetensors", "model")
            tracker.log_artifact(out_dir / "config.json", "model")
            log.info("%s: %d steps (%d resumed) in %.0f s, %.1f images/s on %d process(es)", method, result.steps,
                     result.resumed_from, result.seconds, result.images_per_second, ranks.world_size)
        status = "FINISHED"
    finally:
        tracker.finish(status)
    return result
