"""An HTML template for `dvc plots show` that draws without a network.

DVC's own page loads Vega, Vega-Lite and Vega-Embed from a CDN, so offline it is blank and says
nothing. This template carries the three libraries inline, from the vl-convert-python package
(which bundles them), and has no `{scripts}` placeholder, so DVC's CDN tags are left out.
"""
from __future__ import annotations

import logging
from pathlib import Path

from pipeline.io import atomic_file

log = logging.getLogger(__name__)

# DVC fills these by plain text replacement (dvc_render.html.HTML.embed); {scripts} is DVC's CDN tags
PLOTS_PLACEHOLDER, REFRESH_PLACEHOLDER, SCRIPTS_PLACEHOLDER = "{plot_divs}", "{refresh_tag}", "{scripts}"
_HEAD = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>DVC plots</title>
    <style>
        table { border-spacing: 15px; }
    </style>
    <!-- Vega, Vega-Lite and Vega-Embed, inlined: this page loads nothing from the network -->
    <script type="text/javascript">
"""
_TAIL = """
    </script>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def vega_bundle() -> tuple[str, str]:
    """(the Vega, Vega-Lite 5 and Vega-Embed script as one, "vega <v>, vega-lite <v>, vega-embed <v>").

    Vega-Lite 5, the newest vl-convert carries: DVC's plot templates declare the v5 schema.
    """
    import vl_convert

    v5 = max((v for v in vl_convert.get_vegalite_versions() if v.startswith("5.")),
             key=lambda v: tuple(int(p) for p in v.split(".")))
    bundle = vl_convert.javascript_bundle(vl_version=v5)
    versions = f"vega {vl_convert.get_vega_version()}, vega-lite {v5}, vega-embed {vl_convert.get_vega_embed_version()}"
    return bundle, versions


def offline_template(bundle: str) -> str:
    """The page around `bundle` (a script that defines window.vega, vegaLite and vegaEmbed)."""
    clashes = [p for p in ("</script", PLOTS_PLACEHOLDER, REFRESH_PLACEHOLDER, SCRIPTS_PLACEHOLDER)
               if p in bundle.lower() or p in bundle]
    if clashes:  # it would end the script tag early, or DVC would replace text inside it
        raise ValueError(f"the Vega bundle holds {clashes}; it cannot be inlined in the template as it is")
    return _HEAD + bundle + _TAIL


def write_offline_template(out: Path) -> Path:
    """Write the offline template to `out` (atomically); returns `out`."""
    bundle, versions = vega_bundle()
    with atomic_file(Path(out)) as tmp:
        tmp.write_text(offline_template(bundle), encoding="utf-8")
    log.info("wrote %s (%s inlined, %.1f MB)", out, versions, Path(out).stat().st_size / 1e6)
    return Path(out)
