"""Optional, explicit downloads of the pix2pix and CycleGAN data sets: the authors' public archives
by name, a streamed download checked against a SHA-256, and an extraction nothing can escape.

A data set lands in `<target>/<collection>/<name>/`, which appears whole (renamed from a temporary
sibling) with `.download.json` inside; `<name>.download.json` beside it pins the digest.
"""
from __future__ import annotations

import datetime
import gzip
import hashlib
import http.client
import json
import logging
import lzma
import os
import re
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

from pipeline.io import atomic_dir, write_json

log = logging.getLogger(__name__)

MARKER = ".download.json"  # inside a data set folder: it is complete
MiB, GiB = 1 << 20, 1 << 30

# What the authors' archives unpack to, once their top folder <name>/ is dropped.
LAYOUTS = {
    "paired": "train/ and val/ (some also test/): each image is an aligned pair side by side, "
              "left half A, right half B",
    "unpaired": "trainA/ trainB/ testA/ testB/: one folder of images per domain and split",
}


class DownloadError(RuntimeError):
    """A data set could not be downloaded, verified or unpacked."""


class ChecksumError(DownloadError):
    """The downloaded archive is not the one expected."""


class UnsafeArchiveError(DownloadError):
    """An archive member would escape the target, is a link or special file, or breaks a size limit."""


@dataclass(frozen=True)
class Archive:
    collection: str  # pix2pix | cyclegan: the folder under the download target
    name: str
    url: str
    format: Literal["tar", "zip"]
    layout: Literal["paired", "unpaired"]
    sha256: str | None = None  # a published digest; None where none is known
    size: int | None = None  # published size in bytes
    note: str = ""

    @property
    def key(self) -> str:
        return f"{self.collection}/{self.name}"

    @property
    def filename(self) -> str:
        return f"{self.name}.tar.gz" if self.format == "tar" else f"{self.name}.zip"


@dataclass(frozen=True)
class Limits:
    """Guards against archive bombs; the defaults hold the largest public set (edges2handbags, ~8 GB)."""
    max_archive_bytes: int = 16 * GiB
    max_unpacked_bytes: int = 32 * GiB
    max_members: int = 1_000_000
    max_member_bytes: int = 512 * MiB


@dataclass(frozen=True)
class Downloaded:
    folder: Path
    record: Path  # the pin beside the folder
    sha256: str
    checked_against: str | None  # published | given | recorded; None: first download, now pinned
    fetched: bool  # False when the data set was already complete


# URLs as in the authors' datasets/download_pix2pix_dataset.sh and download_cyclegan_dataset.sh
# (junyanz/pytorch-CycleGAN-and-pix2pix). No SHA-256 is published for the pix2pix archives.
_PIX2PIX = ("facades", "cityscapes", "maps", "edges2shoes", "edges2handbags", "night2day")
# Sizes and SHA-256 published by TensorFlow Datasets (tensorflow_datasets/url_checksums/cycle_gan.txt)
# for the same files at their former address, people.eecs.berkeley.edu/~taesung_park/CycleGAN/datasets/.
_CYCLEGAN = {
    "apple2orange": (78456409, "845a191e9af8926408ea597001cd03a452e3300a1f44a79fe329b3d59f6e3eb8"),
    "summer2winter_yosemite": (132640856, "167fe1726807a9d22bd106b4a6c0bd7953b688af924ac1bf967439c4961e49f9"),
    "horse2zebra": (116867962, "a74d9d392eecca9966b51287a76ca126af473d9de4f3e8fc0e9cda08fa1730a1"),
    "monet2photo": (305231073, "88f91b00fc228f97c9411fbf1880ec1d119c98f1722e4cfcfaa2fb35fac05b04"),
    "cezanne2photo": (279885071, "3a6c10ca21f9485862f1cbd707744b9dc258954a04631271d23a3605eeb63cff"),
    "ukiyoe2photo": (292946532, "02a2a2fb5ecf425ca1bf86aca7304377da64a2a1d3b86df54eb65e4068bf3b08"),
    "vangogh2photo": (306590349, "362c3473e70be0944bda08d49d660eafdc2854df55d697835b8186d1d79caaff"),
    "maps": (1476754427, "639534f69dbf9f36bef8d6292a7698006361221f83f0285d7c9ca78afe6e8a9e"),
    "cityscapes": (279601602, "d2f6910fd056c1ee9873777ae838e7ac4a2c833598ae62a04188e5ab2f4ea036"),
    "facades": (35135868, "9a31ebf3a31b9b5cd195dd5bf62e9308e00cb94604d1019e3889ac84248695c0"),
    "iphone2dslr_flower": (339964458, "8fcb5e374d631b107e1d961b8c4cd0a186aa2a4ff3e279923f4c426128de7113"),
}
_CITYSCAPES = "Cityscapes terms of use apply (cityscapes-dataset.com)"
ARCHIVES: dict[str, Archive] = {a.key: a for a in [
    *(Archive("pix2pix", n, f"http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/{n}.tar.gz", "tar", "paired",
              note="" if n != "cityscapes" else f"{_CITYSCAPES}; the authors' script no longer offers this "
                                                "archive, so the URL may fail: build it from the official release")
      for n in _PIX2PIX),
    *(Archive("cyclegan", n, f"http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{n}.zip", "zip", "unpaired",
              sha256=digest, size=size, note=_CITYSCAPES if n == "cityscapes" else "")
      for n, (size, digest) in _CYCLEGAN.items()),
]}


def find_archive(name: str) -> Archive:
    """`pix2pix/facades`, or a bare name where only one collection has it (`horse2zebra`)."""
    if name in ARCHIVES:
        return ARCHIVES[name]
    matches = [a for a in ARCHIVES.values() if a.name == name]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise DownloadError(f"{name!r} is in several collections; say which: {', '.join(a.key for a in matches)}")
    raise DownloadError(f"unknown data set {name!r}; known: {', '.join(sorted(ARCHIVES))}")


def manual_instructions(archive: Archive, target: Path) -> str:
    folder = target / archive.collection / archive.name
    return (f"To install it by hand, fetch {archive.url} on a machine with a network, then either run\n"
            f"  python -m stages download {archive.key} --target {target} --url file:///ABSOLUTE/PATH/TO/"
            f"{archive.filename}\n"
            f"(verified and unpacked safely), or unpack it yourself so that {folder}/ holds "
            f"{LAYOUTS[archive.layout]}, and point data.path at {folder}.")


def _normalise_sha256(value: str) -> str:
    value = value.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise DownloadError(f"--sha256 {value!r} is not a SHA-256 (64 hexadecimal digits)")
    return value


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise DownloadError(f"{path}: not valid JSON ({exc}); remove it to download again") from None


def fetch(url: str, dest: Path, max_bytes: int, timeout: float) -> tuple[str, int]:
    """Stream `url` into `dest`; return (sha256, size). A short read is an error, never a result."""
    digest, size, expected = hashlib.sha256(), 0, None
    opener = urllib.request.build_opener()  # per call, so that proxy settings are read now
    with opener.open(url, timeout=timeout) as response, open(dest, "wb") as out:
        length = response.headers.get("Content-Length")
        if length is not None and length.strip().isdigit():
            expected = int(length)
            if expected > max_bytes:
                raise UnsafeArchiveError(f"{url}: {expected} bytes, above the limit of {max_bytes}")
        while chunk := response.read(MiB):
            size += len(chunk)
            if size > max_bytes:
                raise UnsafeArchiveError(f"{url}: more than the limit of {max_bytes} bytes")
            digest.update(chunk)
            out.write(chunk)
    # http.client ends a body cut short by the server quietly: compare with the announced length
    if expected is not None and size != expected:
        raise DownloadError(f"{url}: the connection ended after {size} of {expected} bytes")
    return digest.hexdigest(), size


def _member_path(name: str, label: str) -> PurePosixPath:
    if not name or "\x00" in name or "\\" in name:
        raise UnsafeArchiveError(f"{label}: member {name!r} has an empty name, a NUL or a backslash")
    path = PurePosixPath(name)
    if path.is_absolute() or re.match(r"[A-Za-z]:", name):  # a Windows drive is absolute too
        raise UnsafeArchiveError(f"{label}: member {name!r} has an absolute path")
    if ".." in path.parts:
        raise UnsafeArchiveError(f"{label}: member {name!r} has a '..' component")
    return path


def _destination(root: Path, rel: PurePosixPath, is_dir: bool, label: str) -> Path:
    if not rel.parts and not is_dir:  # a file named "." or ""
        raise UnsafeArchiveError(f"{label}: member {str(rel)!r} is a file without a name")
    dest = root.joinpath(*rel.parts)
    # no links are ever created, so this holds by construction; checked once more all the same
    real, base = os.path.realpath(dest), os.path.realpath(root)
    if real != base and not real.startswith(base + os.sep):
        raise UnsafeArchiveError(f"{label}: member {str(rel)!r} would be written outside {root}")
    return dest


def _copy(src: BinaryIO, dest: Path, declared: int, label: str) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(dest, "wb") as out:
        while chunk := src.read(MiB):
            written += len(chunk)
            if written > declared:
                raise UnsafeArchiveError(f"{label}: member {dest.name!r} holds more than its declared {declared} bytes")
            out.write(chunk)


class _Budget:
    """Running totals of one extraction against the limits, checked before anything is written."""

    def __init__(self, limits: Limits, label: str):
        self.limits, self.label, self.members, self.bytes = limits, label, 0, 0

    def admit(self, name: str, size: int) -> None:
        self.members += 1
        self.bytes += size
        if self.members > self.limits.max_members:
            raise UnsafeArchiveError(f"{self.label}: more than {self.limits.max_members} members (at {name!r})")
        if size > self.limits.max_member_bytes:
            raise UnsafeArchiveError(f"{self.label}: member {name!r} declares {size} bytes, above the "
                                     f"per-member limit of {self.limits.max_member_bytes}")
        if self.bytes > self.limits.max_unpacked_bytes:
            raise UnsafeArchiveError(f"{self.label}: more than {self.limits.max_unpacked_bytes} bytes unpacked "
                                     f"(at {name!r})")


def _extract_tar(path: Path, root: Path, budget: _Budget, label: str) -> None:
    with tarfile.open(path, "r:*") as tar:
        for member in tar:  # headers are read lazily: each member is checked before it is written
            rel = _member_path(member.name, label)
            if member.issym() or member.islnk():
                raise UnsafeArchiveError(f"{label}: member {member.name!r} is a link (to {member.linkname!r})")
            if not (member.isdir() or member.isreg()):
                raise UnsafeArchiveError(f"{label}: member {member.name!r} is a device, FIFO or other special file")
            budget.admit(member.name, member.size if member.isreg() else 0)
            dest = _destination(root, rel, member.isdir(), label)
            if member.isdir():
                dest.mkdir(parents=True, exist_ok=True)
            else:
                _copy(tar.extractfile(member), dest, member.size, label)


def _extract_zip(path: Path, root: Path, budget: _Budget, label: str) -> None:
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            rel = _member_path(info.filename, label)
            mode = info.external_attr >> 16  # Unix mode, where the archiver recorded one
            if stat.S_ISLNK(mode):
                raise UnsafeArchiveError(f"{label}: member {info.filename!r} is a symbolic link")
            if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise UnsafeArchiveError(f"{label}: member {info.filename!r} is a device, FIFO or other special file")
            budget.admit(info.filename, 0 if info.is_dir() else info.file_size)
            dest = _destination(root, rel, info.is_dir(), label)
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
            else:
                with zf.open(info) as src:  # zipfile stops at the declared size and checks the CRC
                    _copy(src, dest, info.file_size, label)


def safe_extract(path: Path, root: Path, fmt: Literal["tar", "zip"], limits: Limits = Limits(),
                 label: str | None = None) -> None:
    """Unpack archive `path` into the existing folder `root`, refusing any unsafe member.

    Members are written by this code, never by tarfile/zipfile, so behaviour is the same on every
    Python: regular files and folders only, default permissions, nothing outside `root`.
    """
    label = label or path.name
    budget = _Budget(limits, label)
    try:
        (_extract_tar if fmt == "tar" else _extract_zip)(path, root, budget, label)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as exc:
        raise DownloadError(f"{label}: damaged or truncated archive ({exc})") from None


def _install(part: Path, archive: Archive, folder: Path, limits: Limits, record: dict) -> None:
    """Unpack into a temporary sibling of `folder`, drop the top folder <name>/, mark it, rename it."""
    with atomic_dir(folder) as tmp:
        unpack = Path(tempfile.mkdtemp(prefix=".unpack-", dir=tmp))
        safe_extract(part, unpack, archive.format, limits, label=archive.filename)
        entries = list(unpack.iterdir())
        top = entries[0] if len(entries) == 1 and entries[0].is_dir() and entries[0].name == archive.name else unpack
        for child in top.iterdir():
            os.rename(child, tmp / child.name)
        shutil.rmtree(unpack)
        write_json(tmp / MARKER, record)


def download(archive: Archive, target: Path, sha256: str | None = None, url: str | None = None,
             limits: Limits = Limits(), timeout: float = 15.0) -> Downloaded:
    """Download, verify and unpack `archive` into `<target>/<collection>/<name>/`; a no-op when complete.

    The expected digest is, in order: `sha256`, the published one, the one pinned by an earlier
    download. With none of these, the digest of this download is pinned (trust on first use).
    """
    url = url or archive.url
    parent = target / archive.collection
    folder, pin = parent / archive.name, parent / f"{archive.name}.download.json"
    if sha256:
        expected, source = _normalise_sha256(sha256), "given"
    elif archive.sha256:
        expected, source = archive.sha256, "published"
    else:
        pinned = _read_json(pin)
        expected, source = (pinned["sha256"], "recorded") if pinned else (None, None)

    marker = _read_json(folder / MARKER)
    if marker is not None:
        if expected is not None and marker["sha256"] != expected:
            raise ChecksumError(f"{folder} was unpacked from an archive with sha256 {marker['sha256']}, but "
                                f"{expected} is expected ({source}); remove {folder} and {pin} to download again")
        if not pin.exists():  # the run that unpacked it stopped before writing the pin
            write_json(pin, marker)
        log.info("%s is already complete (sha256 %s)", folder, marker["sha256"])
        return Downloaded(folder, pin, marker["sha256"], marker.get("checked_against"), fetched=False)
    if folder.exists():
        raise DownloadError(f"{folder} exists but was not unpacked by this command (no {MARKER} inside); "
                            f"use it as it is, or remove it to download again")

    parent.mkdir(parents=True, exist_ok=True)
    part = parent / f".{archive.filename}.part"
    try:
        log.info("downloading %s to %s", url, part)
        try:
            actual, size = fetch(url, part, limits.max_archive_bytes, timeout)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:  # incl. timeouts, resets
            reason = exc if isinstance(exc, urllib.error.HTTPError) else getattr(exc, "reason", exc)
            raise DownloadError(f"could not download {url}: {reason}\n"
                                f"{manual_instructions(archive, target)}") from None
        if expected is not None and actual != expected:
            raise ChecksumError(f"{url}: sha256 {actual}, expected {expected} ({source}); the download was deleted")
        record = {"name": archive.key, "url": url, "size": size, "sha256": actual, "checked_against": source,
                  "downloaded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        _install(part, archive, folder, limits, record)
    finally:
        part.unlink(missing_ok=True)
    write_json(pin, record)
    if source is None:
        log.warning("no published sha256 for %s: pinned this download's %s in %s (trust on first use); "
                    "later downloads are checked against it", archive.key, actual, pin)
    return Downloaded(folder, pin, actual, source, fetched=True)
