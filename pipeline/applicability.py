"""Which methods can learn from a curated data set, and the not-applicable record that a stage
writes in place of an output that cannot exist (pix2pix on unpaired data, a segmenter without
labels), so that `dvc repro` finishes on every data set and later stages pass the record on."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.io import read_json_object, write_json

NOT_APPLICABLE = "not_applicable.json"


class NotApplicable(ValueError):
    """A folder holds a not-applicable record where a trained model was expected."""


def method_not_applicable(info: dict[str, Any], method: str, needs_pairs: bool) -> str | None:
    """Why `method` (learning from aligned pairs only where `needs_pairs`: the method table's
    `paired`) cannot learn from the data set that `info` (the store's info.json) describes, or
    None when it can. Only the kind of data decides."""
    dataset, names = info["dataset"], info["domain_names"]
    if info["domain_a"] == "none":
        return f"{method} needs two domains; {dataset} holds one ({names.get('b') or 'photos'}): nothing to translate from"
    if needs_pairs and not info["paired"]:
        return (f"{method} needs paired data; {dataset} is unpaired "
                f"({names.get('a') or 'A'} vs {names.get('b') or 'B'})")
    return None


def write_not_applicable(out_dir: Path, reason: str, *, dataset: str | None = None,
                         method: str | None = None) -> dict[str, Any]:
    """Mark a stage output folder as "does not apply to this data set"; returns the record."""
    record: dict[str, Any] = {"applicable": False, "reason": reason}
    record.update({k: v for k, v in (("dataset", dataset), ("method", method)) if v is not None})
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_json(Path(out_dir) / NOT_APPLICABLE, record)
    return record


def not_applicable_record(folder: Path) -> dict[str, Any] | None:
    """The record written by write_not_applicable, or None for a folder holding a real output."""
    path = Path(folder) / NOT_APPLICABLE
    if not path.is_file():
        return None
    record = read_json_object(path)
    record.setdefault("reason", "not applicable")
    return record


def not_applicable_reason(folder: Path) -> str | None:
    """The reason recorded by write_not_applicable, or None for a folder holding a real output."""
    record = not_applicable_record(folder)
    return None if record is None else str(record["reason"])
