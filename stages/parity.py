"""`python -m stages parity <method>`: train a few steps in fp32 eager and with each fast-path switch
the device runs, print the per-step loss and final weight differences, and write them as JSON."""
from __future__ import annotations

from pathlib import Path

import typer

from stages.common import METHOD_HELP, ParamsOption, domain_errors, read_params


def parity(
    method: str = typer.Argument(..., help=METHOD_HELP),
    params: Path = ParamsOption,
    steps: int = typer.Option(5, min=1, help="Training steps per run."),
    seed: int = typer.Option(0, help="Seed of the weights, the dropout draws and the batches (every run the same)."),
    switches: str = typer.Option("all", help="Comma-separated of compile, channels_last, fused_adam, bf16; "
                                             "'all': every one the device runs."),
    combined: bool = typer.Option(True, help="Also run all the chosen switches together."),
    compile_mode: str = typer.Option("default", help="torch.compile mode for the compile switch."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    json_out: Path = typer.Option(None, "--json", dir_okay=False, help="Write the full result here."),
) -> None:
    """Show that the fast path leaves training unchanged: exit 1 when a switch is out of its tolerance."""
    import torch

    from pipeline.device import pick_device
    from pipeline.io import write_json
    from pipeline.models import method_spec
    from pipeline.parity import parity_table, run_parity

    cfg = read_params(params)
    with domain_errors(ValueError):
        method_spec(method)
        dev = pick_device(device)
        names = None if switches == "all" else [s.strip() for s in switches.split(",") if s.strip()]
        result = run_parity(cfg, method, dev, steps=steps, seed=seed, switches=names, combined=combined,
                            compile_mode=compile_mode)
    if dev.type == "cpu":
        result["threads"] = torch.get_num_threads()
    typer.echo(parity_table(result))
    if json_out is not None:
        write_json(json_out, result)
        typer.echo(f"wrote {json_out}")
    if not all(v["passed"] for v in result["variants"]):
        raise typer.Exit(code=1)
