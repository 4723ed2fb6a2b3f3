"""What a curated data set's empty splits rule out, said by `curate` with counts before a later stage
finds out: a split with no image of a domain stops curation where training cannot work, and is
otherwise a warning naming what will not happen (no translations one way, no scores of them)."""
from __future__ import annotations

import logging
from pathlib import Path

from pipeline.data.store import SPLITS

log = logging.getLogger(__name__)


class EmptySplitError(ValueError):
    """A split that training (or every evaluation) needs holds no image of a domain."""


def _counts(splits: dict[str, int]) -> str:
    return ", ".join(f"{s} {splits.get(s, 0)}" for s in SPLITS)


def empty_split_problems(domain_splits: dict[str, dict[str, int]], *, two_domains: bool, paired: bool,
                         names: dict[str, str]) -> tuple[list[str], list[str]]:
    """(fatal, warnings): one sentence per empty split of a domain, with the counts and its effect.

    Args:
        domain_splits: images per split of each domain, {"a": {"train": 3, ...}, "b": {...}}.
        two_domains: the store has a domain A (else it holds domain B alone and nothing trains on it).
        paired: rows are pairs, so A and B share their splits.
        names: the domains' names ({"a": "Blond_Hair=1", "b": "Black_Hair=1"}).
    """
    label = {d: f"domain {d.upper()} ({names[d]})" if names.get(d) else f"domain {d.upper()}" for d in "ab"}
    if not two_domains:
        b = domain_splits["b"]
        if b.get("test", 0):
            return [], []
        return [], [f"split 'test' of {label['b']} is empty ({_counts(b)}): translate@<method>, with a model "
                    "trained on another data set, has nothing to translate"]
    groups = [("ab", f"both domains ({names.get('a') or 'A'} and {names.get('b') or 'B'})")] if paired else \
        [(d, label[d]) for d in "ab"]
    fatal, warnings = [], []
    for domain, what in groups:
        splits = domain_splits["a" if domain == "ab" else domain]
        where = f"split '{{}}' of {what} is empty ({_counts(splits)})"
        if not splits.get("train", 0):
            fatal.append(where.format("train") + ": no method can train without training images of both domains")
        if not splits.get("val", 0):
            fatal.append(where.format("val") + ": training draws its sample grids from val images of both "
                         "domains, so train@<method> would fail")
    tests = {d: domain_splits[d].get("test", 0) for d in "ab"}
    if not any(tests.values()):
        what = groups[0][1] if paired else "either domain"
        fatal.append(f"split 'test' of {what} is empty (A: {_counts(domain_splits['a'])}; "
                     f"B: {_counts(domain_splits['b'])}): nothing to translate, so evaluate@<method> would fail")
    elif not paired:
        for domain, other in (("a", "b"), ("b", "a")):
            if not tests[domain]:
                warnings.append(f"split 'test' of {label[domain]} is empty ({_counts(domain_splits[domain])}): no "
                                f"{domain.upper()} -> {other.upper()} translations of the test split "
                                f"(fake_{other}/) and no scores of that direction")
    return fatal, warnings


def say_empty_splits(source: Path, domain_splits: dict[str, dict[str, int]], *, two_domains: bool, paired: bool,
                     names: dict[str, str]) -> None:
    """Log what each empty split of a domain rules out; raise EmptySplitError, naming every split that
    training (or every evaluation) cannot do without, where there is one."""
    fatal, warnings = empty_split_problems(domain_splits, two_domains=two_domains, paired=paired, names=names)
    for warning in warnings:
        log.warning("%s: %s", source, warning)
    if fatal:
        raise EmptySplitError(f"{source}: {'; '.join(fatal)}. Curate more images, or change curate.split "
                              "(or the data set's partition, with curate.use_partition)")
