"""The committed report stands alone, and the README quotes it faithfully: every figure the report
links is committed beside it (a clone or a code host shows it), and the README's table of the
default run and its step counts agree with the report and params.yaml."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from pipeline.config import load_params
from pipeline.models import METHODS

ROOT = Path(__file__).resolve().parents[2]
REPORT, README = ROOT / "reports" / "report.md", ROOT / "README.md"


def _section(text: str, heading: str) -> str:
    return text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]


def _table(text: str) -> list[list[str]]:
    rows = [line for line in text.splitlines() if line.startswith("|") and not line.startswith("|---")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[1:]]


def test_every_figure_the_report_links_is_committed_beside_it():
    text = REPORT.read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert len(links) >= 5
    for link in links:
        path = (REPORT.parent / link).resolve()
        assert path.is_file(), link
        ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT)
        assert ignored.returncode == 1, f"{link} is ignored by git: a clone would show a broken image"


def test_the_readme_quotes_the_reports_labels_to_photo_rows():
    report = {row[0]: row for row in _table(_section(REPORT.read_text(), "## Labels → photo (FCN-score)"))}
    default_run = _section(README.read_text(), "## The default run")
    quoted = _table("| Method" + default_run.split("\n| Method", 1)[1].split("\n\n", 1)[0])
    assert len(quoted) == len(report) >= 4
    header = ["Method", "Per-pixel acc.", "Per-class acc.", "Class IOU", "Of the upper bound"]
    for label, per_pixel, share in quoted:
        row = dict(zip(header, report[label]))
        assert (per_pixel, share) == (row["Per-pixel acc."], row["Of the upper bound"]), label


def test_the_readmes_step_counts_are_params_yamls():
    """"<method> <seconds> s (<steps> steps" in the default run's paragraph: the steps params.yaml gives."""
    params = load_params(ROOT / "params.yaml")
    text = _section(README.read_text(), "## The default run")
    checked = 0
    for spec in METHODS.values():
        for found in re.finditer(rf"{re.escape(spec.title)}\s+\d+\s+s\s+\((\d+)\s+steps", text):
            assert int(found[1]) == params.schedule(spec.section).total_steps, found[0]
            checked += 1
    assert checked >= 1
