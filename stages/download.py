"""User command `download` (not a DVC stage): fetch one of the pix2pix/CycleGAN data sets by name into
--target/<collection>/<name>/, verified by SHA-256 and unpacked safely; `--list` names them."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stages.common import domain_errors


def download(
    name: Annotated[str | None, typer.Argument(help="e.g. pix2pix/facades, or horse2zebra (see --list).")] = None,
    target: Path = typer.Option(Path("data/downloads"), help="Data sets land in TARGET/<collection>/<name>/."),
    sha256: str | None = typer.Option(None, help="The archive's expected SHA-256 (overrides the published one)."),
    url: str | None = typer.Option(None, help="A mirror of the same archive: http(s)://... or file:///..."),
    list_names: bool = typer.Option(False, "--list", help="List the known data sets and exit."),
    timeout: float = typer.Option(15.0, help="Seconds to wait for a connection, or for more data."),
    max_archive_gib: float = typer.Option(16.0, help="Largest archive accepted."),
    max_unpacked_gib: float = typer.Option(32.0, help="Largest total unpacked size accepted."),
    max_files: int = typer.Option(1_000_000, help="Most archive members accepted."),
) -> None:
    """Download a public pix2pix or CycleGAN data set (optional: the pipeline never downloads by itself)."""
    from pipeline.data.sources.download import ARCHIVES, GiB, LAYOUTS, DownloadError, Limits, find_archive
    from pipeline.data.sources.download import download as run

    if list_names:
        for a in ARCHIVES.values():
            size = f"{a.size / 1e6:7.0f} MB" if a.size else "      ? MB"
            check = "published sha256" if a.sha256 else "no published sha256"
            typer.echo(f"{a.key:<32} {size}  {a.layout:<8}  {check}" + (f"  ({a.note})" if a.note else ""))
        return
    if name is None:
        raise typer.BadParameter("give a data set name, or --list")
    limits = Limits(max_archive_bytes=int(max_archive_gib * GiB), max_unpacked_bytes=int(max_unpacked_gib * GiB),
                    max_members=max_files)
    with domain_errors(DownloadError):
        archive = find_archive(name)
        if archive.note:
            typer.echo(f"note: {archive.note}", err=True)
        done = run(archive, target, sha256=sha256, url=url, limits=limits, timeout=timeout)
    if not done.fetched:
        typer.echo(f"{archive.key}: already complete in {done.folder} (sha256 {done.sha256})")
    elif done.checked_against is None:
        typer.echo(f"{archive.key}: downloaded into {done.folder}\nsha256 {done.sha256}: no checksum was known, so "
                   f"this one is now pinned in {done.record} and later downloads must match it (trust on first "
                   f"use); compare it with a source you trust")
    else:
        typer.echo(f"{archive.key}: downloaded into {done.folder}\n"
                   f"sha256 {done.sha256} (matches the {done.checked_against} checksum)")
    typer.echo(f"it holds {LAYOUTS[archive.layout]}; point data.path at {done.folder}")
