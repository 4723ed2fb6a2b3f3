"""Atomic file and folder writes: an interrupted stage never leaves a half-written output."""
from __future__ import annotations

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


# Per-class tables would make `dvc metrics show` hundreds of columns wide: a metrics file keeps the
# scalars and a sibling file under per_class/ keeps the tables; readers merge the two.
DETAIL_KEYS = frozenset({"per_class_iou", "class_coverage"})
DETAILS_DIR = "per_class"


def details_path(metrics_path: Path) -> Path:
    """Where the per-class tables of the metrics file `metrics_path` are kept."""
    return Path(metrics_path).parent / DETAILS_DIR / Path(metrics_path).name


def _split_details(record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    scalars, details = {}, {}
    for key, value in record.items():
        if key in DETAIL_KEYS:
            details[key] = value
        elif isinstance(value, dict):
            scalars[key], inner = _split_details(value)
            if inner:
                details[key] = inner
        else:
            scalars[key] = value
    return scalars, details


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra`'s keys set, nested mappings merged key by key (neither argument changes)."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def write_metrics(path: Path, record: dict[str, Any]) -> None:
    """`record` less its per-class tables to `path` (a DVC metrics file); the tables to details_path."""
    scalars, details = _split_details(record)
    write_json(details_path(path), details)
    write_json(path, scalars)


def read_metrics(path: Path) -> Any:
    """A metrics file with its per-class tables merged back in (when the details file exists)."""
    value = json.loads(Path(path).read_text())
    extra = details_path(path)
    if isinstance(value, dict) and extra.is_file():
        details = json.loads(extra.read_text())
        if isinstance(details, dict):
            value = deep_merge(value, details)
    return value


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
