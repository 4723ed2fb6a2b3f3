"""Atomic file and folder writes: an interrupted stage never leaves a half-written output."""
from __future__ import annotations

import hashlib

import contextlib
import json
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a fresh temporary sibling of `target`; on success it replaces `target` whole.

    On an exception the temporary folder is removed and an existing `target` is left untouched.
    Temporary folders left by an interrupted earlier run are removed first.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in [*target.parent.glob(f".{target.name}.tmp-*"), *target.parent.glob(f".{target.name}.old-*")]:
        log.warning("removing %s, left by an interrupted run", stale)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = _fresh_dir(target.parent, f".{target.name}.tmp-")
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not target.exists() and not target.is_symlink():
        os.rename(tmp, target)
        return
    # a folder cannot be renamed onto a non-empty one: move the old one aside first, and back on failure
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.rename(target, old / target.name)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(old / target.name, target)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _fresh_dir(parent: Path, prefix: str) -> Path:
    """A new empty folder `parent/<prefix><random>` with the user's umask: mkdtemp's 0700 would stay
    on the output once it is renamed onto its target."""
    path = parent / f"{prefix}{secrets.token_hex(8)}"
    path.mkdir()  # raises FileExistsError rather than reuse a folder
    return path


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it is renamed onto `target`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def read_json_object(path: Path, error: type[ValueError] = ValueError) -> dict[str, Any]:
    """A JSON file that must hold an object; `error` names the file and what is wrong with it."""
    try:
        value = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise error(f"{path}: must hold a JSON object, got {type(value).__name__}")
    return value


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically, keys sorted, so diffs of metrics files stay readable."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


# A DVC metrics file holds scores only, one number under one short name each, so that `dvc metrics
# show` fits a terminal and `dvc metrics diff` reports nothing but score changes. The whole record
# the scores came from (per-class tables, every score, names, MLflow run id, times) is written
# beside it, in a file no stage declares as a metric; readers take the record. (The folder's name
# predates the records: the evaluate stage declares reports/metrics/per_class/<method>.json.)
RECORDS_DIR = "per_class"


def record_path(metrics_path: Path) -> Path:
    """Where the whole record behind the metrics file `metrics_path` is kept."""
    return Path(metrics_path).parent / RECORDS_DIR / Path(metrics_path).name


def write_metrics(path: Path, scores: dict[str, float], record: dict[str, Any]) -> None:
    """`scores` (flat name -> number) to `path`, a DVC metrics file; `record` to record_path(path)."""
    bad = {k: v for k, v in scores.items() if isinstance(v, bool) or not isinstance(v, (int, float))}
    if bad:
        raise ValueError(f"{path}: a metrics file holds numbers only, got {bad}")
    write_json(record_path(path), record)
    write_json(path, scores)


def read_metrics(path: Path) -> Any:
    """The whole record behind a metrics file, or the metrics file itself where it has none (a
    file that is no DVC metric, such as baseline.json, holds its record alone)."""
    record = record_path(path)
    return json.loads((record if record.is_file() else Path(path)).read_text())


# Under DVC each stage's whole command is timed (loading, training, writing) for the report's
# provenance; the records are ignored by git and by DVC, so they never make a stage out of date.
TIMINGS_DIR = Path("reports/timings")


def record_stage_time(stage: str, seconds: float) -> None:
    """Write TIMINGS_DIR/<stage>.json for the DVC stage `stage` (as $DVC_STAGE names it)."""
    name = stage.rpartition(":")[2]  # `dvc.yaml:train@pix2pix` outside the root dvc.yaml
    try:
        write_json(TIMINGS_DIR / f"{name}.json", {"stage": name, "seconds": round(seconds, 3),
                                                 "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    except OSError as exc:  # a read-only reports/ must not fail a stage that has done its work
        logging.getLogger("stages").warning("could not record the wall time of %s: %s", name, exc)


def sha256_of(path: Path) -> str:
    """The file's SHA-256 (hex), read in 1 MiB blocks so that large weights files stay out of memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
