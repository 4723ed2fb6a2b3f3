"""The one link policy of every reader of user data: a file, or a link, must resolve inside the folder
the user named. A link that escapes it is refused by name; its target is never opened or measured.
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
