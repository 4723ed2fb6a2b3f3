"""The one link policy of every reader of user data: a file, or a link, must resolve inside the folder
the user named. A link that escapes it is refused by name; its target is never opened or measured.
Images are refused one by one (listed with the reason); a table the whole data set depends on (an
attribute, partition or landmarks file) stops the reader with `LinkOutsideError`.
"""
from __future__ import annotations

import os
from pathlib import Path


def link_refusal(path: Path, root: Path) -> str | None:
    """The reason to refuse `path` when it (or a linked folder on its way) resolves outside `root`,
    else None. Only link names are resolved: nothing about the target (size, contents) is read."""
    # realpath, not Path.resolve(strict=True): a dangling link is refused the same way, not as "not found"
    if Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root)):
        return None
    return f"link resolves outside {root}"


def is_listed(path: Path, root: Path) -> bool:
    """Whether a folder entry counts as a file to read: a file, or a link to one inside `root`; a link
    that escapes `root` is listed too, whatever it points at, so that it is refused by name rather
    than followed or skipped unseen."""
    return link_refusal(path, root) is not None or path.is_file()


class LinkOutsideError(ValueError):
    """A file the whole data set depends on is a link that resolves outside the folder the user named."""


def require_inside(path: Path, root: Path, what: str) -> Path:
    """`path` when it resolves inside `root`; else LinkOutsideError naming the file, what it is and why.

    For the files a data set cannot be read without (CelebA's attribute, partition and landmarks
    tables): one of them cannot be skipped the way one image is, so it stops the reader instead.
    """
    reason = link_refusal(path, root)
    if reason is not None:
        raise LinkOutsideError(f"{path}: the {what} is refused: {reason}; it is not read. Copy the file "
                               f"into {root}, or name a folder that holds it")
    return path
