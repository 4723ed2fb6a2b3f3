"""`python -m stages bench`: print training images/s and peak memory per method (default size and
the papers' 256 px architectures) and the street-scene generator's images/s."""
from __future__ import annotations

from pathlib import Path

import typer

from stages.common import ParamsOption, read_params


def bench(
    params: Path = ParamsOption,
    methods: str = typer.Option("all", help="Comma-separated methods of the method table, or 'all'."),
    sizes: str = typer.Option("default,256", help="'default' (params) and/or pixel sizes for the papers' nets."),
    steps: int = typer.Option(10, help="Timed steps per case."),
    warmup: int = typer.Option(3, help="Untimed steps first."),
    generator: bool = typer.Option(True, help="Also time the street-scene generator."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
) -> None:
    """Benchmark training and data generation on this machine."""
    import torch

    from pipeline.bench import bench_training, paper_params
    from pipeline.device import pick_device
    from pipeline.models import METHODS

    cfg = read_params(params)
    dev = pick_device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    typer.echo(f"device: {name}, torch {torch.__version__}")
    if generator:
        from pipeline.data.streets.scenes import benchmark

        for size in (64, 256):
            typer.echo(f"streets generator  {size:4d} px: {benchmark(size, 400 if size == 64 else 100):8.1f} images/s (one process)")
    typer.echo(f"{'method':<11} {'size':>5} {'batch':>5} {'images/s':>9} {'ms/step':>9} {'peak MB':>9}")
    for size in sizes.split(","):
        run_cfg = cfg if size == "default" else paper_params(cfg, int(size))
        for method in (METHODS if methods == "all" else methods.split(",")):
            r = bench_training(run_cfg, method, dev, warmup, steps)
            typer.echo(f"{r.method:<11} {r.image_size:>5} {r.batch_size:>5} {r.images_per_s:>9.2f} "
                       f"{r.ms_per_step:>9.1f} {r.peak_mem_mb:>9.0f}")
