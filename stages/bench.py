"""`python -m stages bench`: time training per case (the papers' networks under named tags, and each
method at the default params), print a table and optionally write one JSON line per case; also the
street-scene generator's images/s."""
from __future__ import annotations

from pathlib import Path

import typer

from stages.common import ParamsOption, domain_errors, read_params


def bench(
    params: Path = ParamsOption,
    cases: str = typer.Option("auto", help="Comma-separated tags of pipeline.bench.CASES, 'default' (each method at "
                                           "the params), 'gpu' (the 256 px tags), 'cpu' (the cpu_ tags), or 'auto': "
                                           "default plus gpu on CUDA, default plus cpu on a CPU."),
    methods: str = typer.Option("all", help="Only these methods (comma-separated), or 'all'."),
    steps: int = typer.Option(10, min=1, help="Timed steps per case (synced), and as many again unsynced."),
    warmup: int = typer.Option(3, min=0, help="Untimed steps first (compilation happens here)."),
    data: Path = typer.Option(None, exists=True, file_okay=False,
                              help="Curated store for the unsynced window's batches; random uint8 arrays "
                                   "if not given."),
    reference: bool = typer.Option(False, help="Also time each case in fp32 eager (every switch off), right "
                                               "before it."),
    json_out: Path = typer.Option(None, "--json", dir_okay=False, help="Append one JSON line per case here."),
    generator: bool = typer.Option(True, help="Also time the street-scene generator."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
) -> None:
    """Benchmark training and data generation on this machine."""
    import json

    import torch

    from pipeline.bench import (bench_case, bench_table_header, bench_table_row, device_name, reference_params,
                                select_cases)
    from pipeline.device import pick_device

    cfg = read_params(params)
    dev = pick_device(device)
    with domain_errors(ValueError):
        runs = select_cases(cases, methods, cfg, dev)
    typer.echo(f"device: {device_name(dev)}, torch {torch.__version__}")
    if generator:
        from pipeline.data.streets.scenes import benchmark

        for size in (64, 256):
            rate = benchmark(size, 400 if size == 64 else 100)
            typer.echo(f"streets generator  {size:4d} px: {rate:8.1f} images/s (one process)")
    typer.echo(bench_table_header())
    with domain_errors(ValueError):
        for tag, method, run_cfg in runs:
            variants = [(f"{tag}:fp32_eager", reference_params(run_cfg))] if reference else []
            for label, p in [*variants, (tag, run_cfg)]:
                record = bench_case(p, method, dev, warmup=warmup, steps=steps, curated=data, tag=label)
                typer.echo(bench_table_row(record))
                if json_out is not None:
                    with json_out.open("a") as f:
                        f.write(json.dumps(record) + "\n")
