"""DVC stage `plots_template`: writes --out, the HTML template that `dvc plots show` uses (.dvc/config
`plots.html_template`), with Vega, Vega-Lite and Vega-Embed inlined so the plots draw offline."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def plots_template(
    out: Annotated[Path, typer.Option(help="The HTML template (for dvc plots show --html-template).")],
) -> None:
    """Write an HTML template for `dvc plots show` with the Vega scripts inlined (no CDN)."""
    from pipeline.plots import write_offline_template

    write_offline_template(out)
