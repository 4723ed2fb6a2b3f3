"""CelebA-format attribute tables, partition files and landmark tables: read both published
formats, and filter.

Formats: the Kaggle CSV (`image_id,5_o_Clock_Shadow,...`), the official text file (line 1 the
number of images, line 2 the attribute names, then `000001.jpg  -1  1 ...`), and the streets data
set's `list_attr.csv` (Kaggle form). The format is sniffed from the content, not the extension.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

PARTITION_NAMES = {0: "train", 1: "val", 2: "test"}


class MissingAttributeError(KeyError):
    """A filter names an attribute the table does not have."""

    def __str__(self) -> str:  # KeyError would repr() the message, quotes and all
        return str(self.args[0])


def read_attr_table(path: Path) -> pd.DataFrame:
    """Read a CelebA attribute table: index `image_id` (str), one int8 column of 1/-1 per attribute.

    A value of 0 (used for "absent" in some derived CSVs) is read as -1. Any other value than
    1, -1 or 0, a missing value, a duplicate id, or a row count that differs from the count the
    official text format declares on line 1 raises ValueError naming the file and line.
    """
    path = Path(path)
    frame, first_line = _read_celeba_table(path)
    _check_ids(frame, path, first_line)
    values = frame.drop(columns="image_id")
    if values.shape[1] == 0:
        raise ValueError(f"{path}: no attribute columns")
    table = _to_plus_minus_one(values, path, first_line)
    table.index = pd.Index(frame["image_id"].astype(str), name="image_id")
    return table


def read_partition(path: Path) -> pd.Series:
    """Read CelebA's `list_eval_partition` (CSV `image_id,partition` or text `000001.jpg 0`).

    Returns a Series named "split", indexed by `image_id`, of "train" / "val" / "test"
    (0 / 1 / 2 in the file). Other values or duplicate ids raise ValueError naming the line.
    """
    path = Path(path)
    first = _head(path, 1)[0]
    sep = "," if "," in first else r"\s+"
    fields = [f.strip() for f in (first.split(",") if sep == "," else first.split())]
    has_header = len(fields) >= 2 and not fields[1].lstrip("-").isdigit()
    frame = _read(path, sep=sep, skiprows=1 if has_header else 0, names=["image_id", "partition"])
    first_line = 2 if has_header else 1
    _check_ids(frame, path, first_line)
    codes = pd.to_numeric(frame["partition"], errors="coerce")
    bad = ~codes.isin(list(PARTITION_NAMES))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raw = frame["partition"].iat[row]
        raw = raw.item() if isinstance(raw, np.generic) else raw
        raise ValueError(f"{path}: line {first_line + row}: partition {raw!r} "
                         "is not 0 (train), 1 (val) or 2 (test)")
    split = codes.astype(int).map(PARTITION_NAMES)
    return pd.Series(split.to_numpy(), index=pd.Index(frame["image_id"].astype(str), name="image_id"),
                     name="split")


LANDMARK_COLUMNS = ("lefteye_x", "lefteye_y", "righteye_x", "righteye_y", "nose_x", "nose_y",
                    "leftmouth_x", "leftmouth_y", "rightmouth_x", "rightmouth_y")


def read_landmarks(path: Path) -> pd.DataFrame:
    """Read CelebA's `list_landmarks_align_celeba` (official text or Kaggle CSV): index `image_id`,
    the 10 coordinate columns (5 points, x then y, in pixels of the aligned image) as float.

    Missing columns, a value that is not a number, or a duplicate id raise ValueError naming the
    file and line.
    """
    path = Path(path)
    frame, first_line = _read_celeba_table(path)
    _check_ids(frame, path, first_line)
    missing = [c for c in LANDMARK_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: not a CelebA landmarks table: no columns {missing}")
    values = frame[list(LANDMARK_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    bad = values.isna().to_numpy()
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raw = frame[LANDMARK_COLUMNS[col]].iat[row]
        raw = raw.item() if isinstance(raw, np.generic) else raw
        raise ValueError(f"{path}: line {first_line + row}, column {LANDMARK_COLUMNS[col]!r}: "
                         f"{'missing value' if pd.isna(raw) else repr(raw)} is not a coordinate")
    values = values.astype(np.float64)
    values.index = pd.Index(frame["image_id"].astype(str), name="image_id")
    return values


def landmark_distances(landmarks: pd.DataFrame) -> pd.Series:
    """Each face's mean Euclidean distance (pixels) of its 5 landmarks from the mean landmarks of
    the whole table: small for faces aligned like most, large for turned or misaligned ones."""
    points = landmarks[list(LANDMARK_COLUMNS)].to_numpy(np.float64).reshape(len(landmarks), 5, 2)  # (N, 5, xy)
    distance = np.linalg.norm(points - points.mean(0), axis=2).mean(1)
    return pd.Series(distance, index=landmarks.index, name="landmark_distance")


def filter_by_attributes(table: pd.DataFrame, require: dict[str, int], exclude: dict[str, int]) -> pd.DataFrame:
    """Keep rows where every `require` attribute equals its value; drop rows where any `exclude`
    attribute equals its value. A named column the table lacks raises MissingAttributeError."""
    named = {**{k: ("require", v) for k, v in require.items()}, **{k: ("exclude", v) for k, v in exclude.items()}}
    missing = sorted(set(named) - set(table.columns))
    if missing:
        where = ", ".join(f"curate.{named[m][0]}.{m}" for m in missing)
        raise MissingAttributeError(f"attribute(s) {missing} named in {where} not in the attribute table; "
                                    f"available: {sorted(map(str, table.columns))}")
    for attr, (section, value) in named.items():
        if value not in (1, -1):
            raise ValueError(f"curate.{section}.{attr}: must be 1 or -1, got {value!r}")
    keep = np.ones(len(table), dtype=bool)
    for attr, value in require.items():
        keep &= table[attr].to_numpy() == value
    for attr, value in exclude.items():
        keep &= table[attr].to_numpy() != value
    return table.loc[keep]


def filter_counts(table: pd.DataFrame, require: dict[str, int], exclude: dict[str, int]) -> dict[str, int]:
    """How many rows each filter rule removes on its own, e.g. {"require Foggy=-1": 12}, for logs."""
    counts = {f"require {a}={v}": int((table[a].to_numpy() != v).sum()) for a, v in require.items()}
    counts |= {f"exclude {a}={v}": int((table[a].to_numpy() == v).sum()) for a, v in exclude.items()}
    return counts


# --------------------------------------------------------------------------- internals


def _read_celeba_table(path: Path) -> tuple[pd.DataFrame, int]:
    """A table in one of CelebA's forms (official text with a count line, Kaggle CSV, or whitespace
    with a header): the frame (column `image_id`, then one column per name) and its first data line."""
    lines = _head(path, 2)
    first = lines[0].strip()
    if first.isdigit():  # official text: count, names, rows
        names = lines[1].split() if len(lines) > 1 else []
        if not names:
            raise ValueError(f"{path}: line 2 must list the column names (official CelebA format)")
        frame = _read(path, sep=r"\s+", skiprows=2, names=["image_id", *names])
        first_line = 3
        if len(frame) != int(first):
            raise ValueError(f"{path}: line 1 declares {int(first)} images but {len(frame)} rows follow "
                             "(truncated file, or a subset whose count was not updated?)")
    elif "," in first:  # Kaggle CSV, with a header row
        header = [name.strip() for name in first.split(",")]
        frame = _read(path, sep=",", skiprows=1, names=["image_id", *header[1:]])
        first_line = 2
    else:  # whitespace-separated with a header row but no count line
        header, second = first.split(), (lines[1].split() if len(lines) > 1 else [])
        if len(second) == len(header) + 1:
            names = header  # the header names only the attributes, as official line 2 does
        elif len(second) == len(header):
            names = header[1:]
        else:
            raise ValueError(f"{path}: not a CelebA table: the header has {len(header)} "
                             f"fields and the first row {len(second)}")
        frame = _read(path, sep=r"\s+", skiprows=1, names=["image_id", *names])
        first_line = 2
    return frame, first_line


def _head(path: Path, n: int) -> list[str]:
    """The first `n` non-blank lines; raises ValueError for an empty file."""
    lines: list[str] = []
    try:
        with path.open(encoding="utf-8-sig") as f:
            for line in f:
                if line.strip():
                    lines.append(line.rstrip("\r\n"))
                    if len(lines) == n:
                        break
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file") from None
    if not lines:
        raise ValueError(f"{path}: empty file")
    return lines


def _read(path: Path, sep: str, skiprows: int, names: list[str]) -> pd.DataFrame:
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{path}: duplicate column names {dupes}")
    try:
        with warnings.catch_warnings():
            # pandas only warns, and drops the extra fields, when a line has more than `names`
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(path, sep=sep, skiprows=skiprows, header=None, names=names, index_col=False,
                               dtype={"image_id": str}, skipinitialspace=True, encoding="utf-8-sig")
    except pd.errors.ParserWarning:
        raise ValueError(f"{path}: {_first_long_line(path, sep, skiprows, len(names))}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot parse: {exc}") from None


def _first_long_line(path: Path, sep: str, skiprows: int, n_fields: int) -> str:
    """Describe the first line with more than `n_fields` fields (the slow path, for the message)."""
    with path.open(encoding="utf-8-sig") as f:
        for number, line in enumerate(f, start=1):
            fields = line.split(",") if sep == "," else line.split()
            if number > skiprows and len(fields) > n_fields:
                return f"line {number} has {len(fields)} fields, expected {n_fields}"
    return f"a line has more than {n_fields} fields"


def _check_ids(frame: pd.DataFrame, path: Path, first_line: int) -> None:
    ids = frame["image_id"]
    if ids.isna().any():
        row = int(np.flatnonzero(ids.isna().to_numpy())[0])
        raise ValueError(f"{path}: line {first_line + row}: missing image id")
    dup = ids.duplicated().to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise ValueError(f"{path}: line {first_line + row}: duplicate image id {ids.iat[row]!r}")


def _to_plus_minus_one(values: pd.DataFrame, path: Path, first_line: int) -> pd.DataFrame:
    """Columns of 1/-1 (0 read as -1) -> int8; anything else raises ValueError naming the cell."""
    numeric = values.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64, copy=True)
    bad = ~np.isin(numeric, (1.0, -1.0, 0.0))  # NaN (missing or not a number) is bad too
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raw = values.iat[row, col]
        raw = raw.item() if isinstance(raw, np.generic) else raw
        what = "missing value (too few fields on the line?)" if pd.isna(raw) else f"value {raw!r}"
        raise ValueError(f"{path}: line {first_line + row}, column {values.columns[col]!r}: {what}; "
                         "expected 1 or -1 (0 is read as -1)")
    n_zero = int((numeric == 0).sum())
    if n_zero:
        log.info("%s: read %d zero values as -1", path, n_zero)
    numeric[numeric == 0] = -1
    return pd.DataFrame(numeric.astype(np.int8), columns=[str(c) for c in values.columns])
