"""Which inputs curation keeps: attribute filters, the two domains of an unpaired task, the data
set's partition file, and the landmark filters (faces aligned like most, as practitioners pick
them for CycleGAN). Every input dropped here is counted by rule or listed as a reject.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import CurateConfig
from pipeline.data.curation.attributes import (MissingAttributeError, filter_by_attributes, filter_counts, landmark_distances,
                                      read_landmarks, read_partition)
from pipeline.data.curation.inputs import Inputs
from pipeline.data.sources.layouts import LABEL_FORMATS

log = logging.getLogger(__name__)


@dataclass
class Selection:
    items: pd.DataFrame  # the kept inputs (index image_id): split, domain, file, a_file
    attributes: pd.DataFrame  # their attribute columns
    a_format: str  # "images" once two domains are selected, else the data set's own
    # the label maps' format where two photo domains were picked from a labelled source (each
    # photo keeps its label map), else None
    photo_labels: str | None
    filtered: dict[str, int]  # rule -> inputs it dropped
    rejects: list[tuple[str, str]]  # (file, reason): inputs the data set's own tables do not list
    distances: pd.Series | None  # landmark distance (pixels) of each kept input, with a landmarks table
    split_origin: str = "the data set's own splits"  # what set the `split` column, where set

    @property
    def n_filtered_out(self) -> int:
        return sum(self.filtered.values())


def select(inputs: Inputs, cfg: CurateConfig) -> Selection:
    """Apply, in order: curate.require / exclude, domain_a / domain_b, the partition file (when
    curate.use_partition), then landmarks_max_distance and landmarks_keep (per domain)."""
    items, table = inputs.items, inputs.attributes
    named = {**cfg.require, **cfg.exclude, **cfg.domain_a, **cfg.domain_b}
    if named and table.shape[1] == 0:
        raise MissingAttributeError(f"curate filters by attributes {sorted(named)}, but data set {inputs.dataset!r} "
                                    f"({inputs.source}) has no attribute table")
    kept = filter_by_attributes(table, cfg.require, cfg.exclude)
    for rule, count in filter_counts(table, cfg.require, cfg.exclude).items():
        log.info("filter %s removes %d of %d images", rule, count, len(table))
    filtered = {"attributes": len(table) - len(kept)} if cfg.require or cfg.exclude else {}
    items = items.loc[kept.index].copy()
    a_format, photo_labels = inputs.a_format, None
    if cfg.domain_a:
        items, counts = _two_domains(inputs, items, kept, cfg)
        filtered |= counts
        photo_labels = inputs.a_format if inputs.a_format in LABEL_FORMATS else None
        a_format = "images"
    log.info("%d images pass the attribute filters, %d filtered out", len(items), sum(filtered.values()))

    rejects: list[tuple[str, str]] = []
    split_origin = "the data set's own splits"
    if inputs.partition_path is not None and not cfg.use_partition:
        log.info("ignoring the partition file %s (curate.use_partition is false)", inputs.partition_path)
    elif inputs.partition_path is not None:
        partition = read_partition(Path(inputs.partition_path))
        unlisted = ~items.index.isin(partition.index)
        rejects += [(f, f"not listed in the partition file {inputs.partition_path}") for f in items["file"][unlisted]]
        items = items.loc[~unlisted]
        items["split"] = partition.reindex(items.index).to_numpy()
        split_origin = "partition"

    distances = None
    if inputs.landmarks_path is not None:
        distances = landmark_distances(read_landmarks(Path(inputs.landmarks_path)))
    if cfg.uses_landmarks:
        if distances is None:
            raise ValueError(f"curate.landmarks_keep / landmarks_max_distance need a landmarks table "
                             f"(list_landmarks_align_celeba.csv or .txt in data.path); data set "
                             f"{inputs.dataset!r} ({inputs.source}) has none")
        unlisted = ~items.index.isin(distances.index)
        rejects += [(f, f"not listed in the landmarks file {inputs.landmarks_path}") for f in items["file"][unlisted]]
        items = items.loc[~unlisted]
        items, counts = _by_landmarks(items, distances.reindex(items.index), cfg)
        filtered |= counts
    return Selection(items=items, attributes=kept.reindex(items.index), a_format=a_format,
                     photo_labels=photo_labels, filtered=filtered,
                     rejects=rejects, distances=None if distances is None else distances.reindex(items.index),
                     split_origin=split_origin)


def _matches(table: pd.DataFrame, values: dict[str, int], key: str) -> np.ndarray:
    missing = sorted(set(values) - set(table.columns))
    if missing:
        raise MissingAttributeError(f"attribute(s) {missing} named in curate.{key} not in the attribute table; "
                                    f"available: {sorted(map(str, table.columns))}")
    keep = np.ones(len(table), dtype=bool)
    for attr, value in values.items():
        keep &= table[attr].to_numpy() == value
    return keep


def _two_domains(inputs: Inputs, items: pd.DataFrame, table: pd.DataFrame,
                 cfg: CurateConfig) -> tuple[pd.DataFrame, dict[str, int]]:
    """Domain "a" where curate.domain_a holds, "b" where domain_b does; an image in both is
    dropped (no image may be in both domains of an unpaired task), as is one in neither. From a
    labelled source (photos with label maps: the street scenes) the domains are of photos, each
    keeping its label map (the caller's `photo_labels`)."""
    labelled = inputs.a_format in LABEL_FORMATS and bool((items["domain"] == "ab").all())
    if not labelled and (inputs.a_format != "none" or (items["domain"] != "b").any()):
        raise ValueError(f"curate.domain_a / domain_b pick two domains from single images with attributes "
                         f"(CelebA) or from photos with label maps (the street scenes); data set "
                         f"{inputs.dataset!r} already has a domain A ({inputs.a_format})")
    in_a, in_b = _matches(table, cfg.domain_a, "domain_a"), _matches(table, cfg.domain_b, "domain_b")
    both, neither = in_a & in_b, ~in_a & ~in_b
    log.info("domain A %s: %d images, domain B %s: %d images; %d in both and %d in neither are dropped",
             cfg.domain_a, int((in_a & ~in_b).sum()), cfg.domain_b, int((in_b & ~in_a).sum()),
             int(both.sum()), int(neither.sum()))
    items = items.assign(domain=np.where(in_a, "a", "b")).loc[in_a ^ in_b]
    return items, {"in both domains": int(both.sum()), "in neither domain": int(neither.sum())}


def _by_landmarks(items: pd.DataFrame, distance: pd.Series, cfg: CurateConfig) -> tuple[pd.DataFrame, dict[str, int]]:
    counts = {}
    if cfg.landmarks_max_distance is not None:
        far = (distance > cfg.landmarks_max_distance).to_numpy()
        counts["landmarks farther than landmarks_max_distance"] = int(far.sum())
        items, distance = items.loc[~far], distance.loc[~far]
    if cfg.landmarks_keep is not None:
        # closest first; ties keep image_id order (the index is sorted and the sort is stable)
        order = distance.sort_values(kind="stable").index
        ranked = items.loc[order]
        kept = ranked.groupby("domain", sort=False).head(cfg.landmarks_keep).index
        counts["landmarks beyond landmarks_keep"] = len(items) - len(kept)
        items = items.loc[items.index.isin(kept)]
    log.info("landmark filters keep %d images (%s)", len(items), counts)
    return items, counts
