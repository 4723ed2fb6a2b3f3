"""DDP under torchrun on the CPU (gloo, 2 processes, tiny nets): 2 ranks x half the batch equal one
process on the whole batch, every rank keeps the same weights, a killed 2-rank run resumes bit-equal,
and a rank that fails or hangs stops the job. The processes run tests/unit/ddp_worker.py."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from pipeline.checkpoint import read_training_state
from pipeline.config import ConfigError
from pipeline.distributed import (GlobalBatchNorm2d, Ranks, check_batch_split, exec_under_torchrun, globalise_batch_norm,
                                  is_main_process, torchrun_command)
from pipeline.sampler import Batch
from tests.unit.ddp_worker import run_case

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m",
            "tests.unit.ddp_worker"]
EQUAL = ("pix2pix_equal", "cyclegan_equal")
IN_SYNC = ("pix2pix", "pix2pix_local_bn", "pix2pix_bf16", "bicyclegan", "cut")


def worker_env() -> dict[str, str]:
    # one thread per rank: two ranks share two cores
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def start(curated: Path, out: Path, *cases: str) -> subprocess.Popen:
    return subprocess.Popen([*TORCHRUN, str(curated), str(out), *cases], cwd=ROOT, env=worker_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 180) -> tuple[int, str]:
    output, _ = proc.communicate(timeout=timeout)
    return proc.returncode, output


@pytest.fixture(scope="module")
def two_ranks(tiny_curated, tmp_path_factory) -> Path:
    """One torchrun of every case that the tests below read, at 2 ranks."""
    out = tmp_path_factory.mktemp("ddp")
    code, output = finish(start(tiny_curated, out, *EQUAL, *IN_SYNC, "cyclegan_resume@unbroken"))
    assert code == 0, output[-4000:]
    return out


def float_tensors(path: Path) -> dict[str, torch.Tensor]:
    nets = torch.load(path, weights_only=True)
    return {f"{net}.{key}": value for net, state in nets.items() for key, value in state.items()
            if value.is_floating_point()}


@pytest.mark.parametrize("case", EQUAL)
def test_two_ranks_on_half_batches_equal_one_process_on_the_whole(case, two_ranks, tiny_curated, tmp_path):
    """pix2pix with batch norm made global (dropout off), CycleGAN with instance norm (no image pool).

    Float64 on both sides, to 1e-7. In float32 the two differ by up to 2 * lr per step (1.7e-3 after
    these 6 steps): a conv bias before instance norm has a true gradient of 0, so what it gets is
    rounding noise, which Adam's m / sqrt(v) scales into steps of +-lr whose sign depends on the
    order of the sums. In float64 that noise (~1e-17) lies far under Adam's eps (1e-8), and the
    weights agree to 4e-9, where one Adam step moves a weight by up to lr = 2e-4: a gradient left
    unaveraged, a wrong share or per-rank batch statistics would differ by that much.
    """
    run_case(tiny_curated, tmp_path, case, Ranks())
    one, two = float_tensors(tmp_path / f"{case}.rank0.pt"), float_tensors(two_ranks / f"{case}.rank0.pt")
    assert one.keys() == two.keys() and all(v.dtype == torch.float64 for v in one.values())
    for key, value in one.items():  # weights and batch-norm running statistics
        assert torch.allclose(value, two[key], rtol=0, atol=1e-7), f"{case}: {key} differs"
    rows_one = list(csv.DictReader((tmp_path / case / "losses.csv").open()))
    rows_two = list(csv.DictReader((two_ranks / case / "losses.csv").open()))  # rank 0's: the ranks' mean
    assert [r["step"] for r in rows_one] == [r["step"] for r in rows_two] == [str(s) for s in range(1, 7)]
    for a, b in zip(rows_one, rows_two):
        for key in set(a) - {"step", "images_per_s"}:  # the mean is taken in float32
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-6, abs=1e-7), (case, a["step"], key)


@pytest.mark.parametrize("case", IN_SYNC)
def test_every_rank_keeps_the_same_weights_and_its_own_random_streams(case, two_ranks):
    """Dropout and latents drawn per rank, samples in train mode (pix2pix's dropout at test, a
    collective with global batch norm), per-rank batch norm, bf16 autocast, BicycleGAN's halves,
    CUT's features outside DDP's forward."""
    rank0, rank1 = float_tensors(two_ranks / f"{case}.rank0.pt"), float_tensors(two_ranks / f"{case}.rank1.pt")
    for key, value in rank0.items():
        if case == "pix2pix_local_bn" and key.endswith(("running_mean", "running_var")):
            continue  # each rank's own statistics; rank 0's are saved
        assert torch.isfinite(value).all() and torch.equal(value, rank1[key]), f"{case}: {key}"
    state = read_training_state(two_ranks / case / "state" / "last.pt")
    assert state.step == 6 and len(state.raw["ranks"]) == 2
    rng0, rng1 = (r["rng"]["torch"] for r in state.raw["ranks"])
    assert not torch.equal(rng0, rng1)  # each rank its own global stream (dropout)
    if case == "bicyclegan":
        z0, z1 = (r["extra"]["z_generator"] for r in state.raw["ranks"])
        assert not torch.equal(z0, z1)
    if case == "pix2pix_local_bn":
        assert any(not torch.equal(v, rank1[k]) for k, v in rank0.items() if k.endswith("running_mean"))
    assert len(list((two_ranks / case / "samples").glob("*.png"))) == 2  # rank 0 alone writes, steps 3 and 6


def _descendants(pid: int) -> list[int]:
    """`pid`'s child processes, recursively (torchrun's workers run in sessions of their own)."""
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return [c for child in children for c in (child, *_descendants(child))]


def test_a_killed_two_rank_run_resumes_bit_equal_to_an_unbroken_one(two_ranks, tiny_curated):
    """CycleGAN with image pools and dropout, both drawn per rank: kill -9 of torchrun and both
    workers after a checkpoint, then the same command again."""
    proc = start(tiny_curated, two_ranks, "cyclegan_resume@killed")
    state = two_ranks / "killed" / "state" / "last.pt"
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    for pid in [proc.pid, *_descendants(proc.pid)]:
        os.kill(pid, signal.SIGKILL)
    proc.communicate()
    assert state.exists() and not (two_ranks / "killed.rank0.pt").exists(), "the run finished before it was killed"
    killed_at = read_training_state(state).step
    code, output = finish(start(tiny_curated, two_ranks, "cyclegan_resume@killed"))
    assert code == 0, output[-4000:]
    assert 0 < killed_at < read_training_state(state).step == 16
    for rank in (0, 1):
        resumed, unbroken = float_tensors(two_ranks / f"killed.rank{rank}.pt"), float_tensors(
            two_ranks / f"unbroken.rank{rank}.pt")
        assert all(torch.equal(value, unbroken[key]) for key, value in resumed.items()), f"rank {rank}"
    pools = [r["extra"]["fake_b_pool"] for r in read_training_state(state).raw["ranks"]]
    assert not torch.equal(pools[0]["images"], pools[1]["images"])  # each rank's own history
    rows = list(csv.DictReader((two_ranks / "killed" / "losses.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(1, 17))


def test_a_rank_that_raises_stops_the_job_with_its_error(tiny_curated, tmp_path):
    """Rank 1 raises at its third step, while rank 0 waits on it in the gradient all-reduce:
    torchrun stops rank 0 and exits 1, with rank 1's error in the output (the timeout path, a rank
    that hangs, is in tests/smoke/test_distributed_stage.py)."""
    started = time.time()
    code, output = finish(start(tiny_curated, tmp_path, "fail_raise"), 120)
    assert time.time() - started < 120
    assert code != 0 and "[rank1]: RuntimeError: rank 1 fails on purpose at its third step" in output
    assert "Root Cause" in output and "rank      : 1" in output


def test_each_rank_takes_its_rows_of_the_global_batch():
    batch = Batch(a=torch.arange(4.0).view(4, 1, 1, 1), b=-torch.arange(4.0).view(4, 1, 1, 1))
    shares = [Ranks(rank=r, world_size=2).share(batch) for r in (0, 1)]
    assert [s.a.flatten().tolist() for s in shares] == [[0, 1], [2, 3]]
    assert [s.b.flatten().tolist() for s in shares] == [[0, -1], [-2, -3]]
    assert Ranks().share(batch) is batch


def test_a_batch_that_does_not_split_names_its_key():
    check_batch_split(4, 2, "pix2pix.batch_size")
    with pytest.raises(ConfigError, match=r"pix2pix.batch_size: the global batch 3 does not split into 2"):
        check_batch_split(3, 2, "pix2pix.batch_size")
    check_batch_split(8, 2, "bicyclegan.batch_size", multiple=2)
    with pytest.raises(ConfigError, match=r"bicyclegan.batch_size: .* 6 .*multiple of 2.*use a multiple of 4"):
        check_batch_split(6, 2, "bicyclegan.batch_size", multiple=2)


def test_global_batch_norm_shares_the_layer_and_is_batch_norm_in_one_process():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.BatchNorm2d(4)))
    bn = net[1][0]
    assert globalise_batch_norm(net, torch.device("cpu")) == 1
    new = net[1][0]
    assert isinstance(new, GlobalBatchNorm2d) and new.weight is bn.weight and new.running_mean is bn.running_mean
    x = torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(0))
    reference = nn.BatchNorm2d(4)
    reference.load_state_dict(bn.state_dict())
    assert torch.equal(new(x), reference(x)) and torch.equal(new.running_var, reference.running_var)


def test_the_stage_restarts_itself_under_torchs_own_launcher(monkeypatch):
    calls = []
    monkeypatch.setattr(os, "execv", lambda path, args: calls.append((path, args)))
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    exec_under_torchrun(1, ["train", "pix2pix"])
    assert calls == [] and is_main_process()
    exec_under_torchrun(2, ["train", "pix2pix", "--params", "params.yaml"])
    ((path, args),) = calls
    assert path == sys.executable and args == torchrun_command(2, ["train", "pix2pix", "--params", "params.yaml"])
    assert args[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    assert args[5:] == ["-m", "stages", "train", "pix2pix", "--params", "params.yaml"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    exec_under_torchrun(2, ["train", "pix2pix"])  # one of torchrun's workers goes on training
    assert len(calls) == 1 and not is_main_process()
