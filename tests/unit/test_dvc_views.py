"""What DVC shows a user: `dvc metrics show` fits a terminal and holds scores only, and
`dvc plots show` writes a page that draws offline (the Vega scripts inline, no CDN)."""
from __future__ import annotations

import configparser
import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from pipeline.plots import offline_template, write_offline_template

ROOT = Path(__file__).resolve().parents[2]


class _Scripts(HTMLParser):
    """Every <script>: its attributes and its text."""

    def __init__(self):
        super().__init__()
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._open = False

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.scripts.append((dict(attrs), ""))
            self._open = True

    def handle_endtag(self, tag):
        if tag == "script":
            self._open = False

    def handle_data(self, data):
        if self._open:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)


def scripts(html: str) -> list[tuple[dict[str, str | None], str]]:
    parser = _Scripts()
    parser.feed(html)
    return parser.scripts


def _dvc(*args: str, cwd: Path = ROOT) -> str:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "COLUMNS": "160",
                               "HOME": str(Path.home())})
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return write_offline_template(tmp_path_factory.mktemp("plots") / "template.html")


def test_the_template_inlines_vega_and_loads_nothing(template):
    html = template.read_text()
    found = scripts(html)
    assert found and all("src" not in attrs for attrs, _ in found)
    bundle = "".join(text for _, text in found)
    assert all(f"window.{name}=" in bundle for name in ("vegaEmbed", "vega", "vegaLite"))
    assert "{plot_divs}" in html and "{scripts}" not in html  # DVC's CDN tags have nowhere to go
    with pytest.raises(ValueError, match="cannot be inlined"):
        offline_template("var a = '</script>';")


def test_dvc_plots_show_writes_a_page_that_draws_offline(template, tmp_path):
    _dvc("plots", "show", "--html-template", str(template), "-o", str(tmp_path / "plots"))
    html = (tmp_path / "plots" / "index.html").read_text()
    found = scripts(html)
    assert not [attrs["src"] for attrs, _ in found if attrs.get("src")]  # no script from http(s) or anywhere
    assert "cdn.jsdelivr" not in html and "window.vegaEmbed=" in html
    assert html.count("vegaEmbed('#") >= len(yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]) - 1


def test_plain_dvc_plots_show_uses_the_offline_template():
    """.dvc/config names the plots_template stage's output, so `dvc plots show` needs no option."""
    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc" / "config")
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["plots_template"]
    named = (ROOT / ".dvc" / config["plots"]["html_template"]).resolve()
    assert named == (ROOT / stage["outs"][0]).resolve()


def _metrics_files() -> list[str]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    files = []
    for name, stage in stages.items():
        body = stage.get("do", stage)
        items = stage.get("foreach") or [None]
        for entry in body.get("metrics", []):
            path = next(iter(entry)) if isinstance(entry, dict) else entry
            files += [path.replace("${item}", str(item)) for item in items] if "${item}" in path else [path]
    return files


def test_metrics_files_hold_scores_only_and_dvc_metrics_show_fits_a_terminal():
    files = _metrics_files()
    assert "reports/metrics/real_photos.json" in files and "reports/metrics/data.json" not in files
    for path in files:
        if (ROOT / path).is_file():  # the committed results of the default run
            scores = json.loads((ROOT / path).read_text())
            assert all(type(v) in (int, float) for v in scores.values()), (path, scores)
    shown = _dvc("metrics", "show")
    assert max(map(len, shown.splitlines())) <= 160, shown
    assert "mlflow_run_id" not in shown and "seconds" not in shown
