"""`download`: archives served from a local folder (http.server on 127.0.0.1, and file:// URLs);
checksums, unsafe members, interrupted transfers, an unreachable host and re-runs."""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import socket
import stat
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import pytest

from pipeline.data.sources.download import (ARCHIVES, MARKER, Archive, ChecksumError, DownloadError, Limits,
                                    UnsafeArchiveError, download, find_archive)

FACADES = ARCHIVES["pix2pix/facades"]  # no published checksum: trust on first use
TOY = Archive("cyclegan", "toy", "http://unused.invalid/toy.zip", "zip", "unpaired")
IMAGES = {"train/1.jpg": b"pair one", "val/2.jpg": b"pair two", "test/3.jpg": b"pair three"}


def tar_gz(members: list[tuple[str, str, bytes | str]]) -> bytes:
    """(name, kind, payload or link target) -> tar.gz bytes; names are written exactly as given."""
    kinds = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE,
             "fifo": tarfile.FIFOTYPE, "char": tarfile.CHRTYPE}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            info.type = kinds[kind]
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            else:
                info.linkname = payload if kind in ("sym", "hard") else ""
                tar.addfile(info)
    return buf.getvalue()


def zip_bytes(members: list[tuple[str, bytes, int]]) -> bytes:
    """(name, payload, unix mode or 0) -> zip bytes, deflated; names are written exactly as given."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, payload, mode in members:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = mode << 16
            zf.writestr(info, payload)
    return buf.getvalue()


def good_tar() -> bytes:
    return tar_gz([("facades/", "dir", b""), *((f"facades/{k}", "file", v) for k, v in IMAGES.items())])


def good_zip() -> bytes:
    return zip_bytes([(f"toy/{d}/{d[-1]}.png", d.encode(), stat.S_IFREG | 0o644)
                      for d in ("trainA", "trainB", "testA", "testB")])


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the folder; /truncated/<file> announces the whole length, sends half and hangs up."""
    requests: list[str] = []

    def do_GET(self):
        type(self).requests.append(self.path)
        if self.path.startswith("/truncated/"):
            data = (Path(self.directory) / self.path.removeprefix("/truncated/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(folder served, base URL) for an HTTP server on a free loopback port."""
    folder = tmp_path_factory.mktemp("served")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def serve(server, name: str, data: bytes) -> str:
    folder, base = server
    (folder / name).write_bytes(data)
    return f"{base}/{name}"


def as_file_url(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / "archives" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path.as_uri()


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def assert_nothing_left(target: Path, collection: str) -> None:
    """No data set folder, pin, part file or temporary folder: only the empty collection folder."""
    assert [p.relative_to(target).as_posix() for p in target.rglob("*")] == [collection]


def test_tar_gz_unpacks_into_the_named_folder_and_pins_the_digest(server, tmp_path):
    data = good_tar()
    done = download(FACADES, tmp_path / "dl", url=serve(server, "facades.tar.gz", data))
    assert done.fetched and done.folder == tmp_path / "dl" / "pix2pix" / "facades"
    assert {k: v for k, v in files_under(done.folder).items() if k != MARKER} == IMAGES  # top folder dropped
    assert done.sha256 == hashlib.sha256(data).hexdigest() and done.checked_against is None
    assert '"sha256"' in done.record.read_text() and done.sha256 in (done.folder / MARKER).read_text()
    assert sorted(p.name for p in done.folder.parent.iterdir()) == ["facades", "facades.download.json"]


def test_zip_unpacks_and_a_rerun_is_a_no_op(server, tmp_path):
    data = good_zip()
    url = serve(server, "toy.zip", data)
    done = download(TOY, tmp_path, sha256=hashlib.sha256(data).hexdigest().upper(), url=url)
    assert done.checked_against == "given"
    assert sorted(files_under(done.folder)) == [MARKER, "testA/A.png", "testB/B.png", "trainA/A.png", "trainB/B.png"]
    before = len(_Handler.requests)
    again = download(TOY, tmp_path, url=url)
    assert not again.fetched and again.sha256 == done.sha256 and len(_Handler.requests) == before


def test_published_checksum_mismatch_is_refused_and_deleted(server, tmp_path):
    horse2zebra = ARCHIVES["cyclegan/horse2zebra"]
    data = good_zip()
    with pytest.raises(ChecksumError) as err:
        download(horse2zebra, tmp_path, url=serve(server, "horse2zebra.zip", data))
    assert horse2zebra.sha256 in str(err.value) and hashlib.sha256(data).hexdigest() in str(err.value)
    assert_nothing_left(tmp_path, "cyclegan")


def test_a_pinned_digest_guards_later_downloads(tmp_path):
    target = tmp_path / "dl"
    first = download(FACADES, target, url=as_file_url(tmp_path, "facades.tar.gz", good_tar()))
    for p in sorted(first.folder.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    first.folder.rmdir()
    other = tar_gz([("facades/train/9.jpg", "file", b"another archive")])
    with pytest.raises(ChecksumError, match=f"expected {first.sha256} \\(recorded\\)"):
        download(FACADES, target, url=as_file_url(tmp_path, "other.tar.gz", other))
    assert not first.folder.exists() and first.record.exists()


def test_a_given_checksum_that_differs_from_a_complete_download_is_an_error(tmp_path):
    done = download(FACADES, tmp_path, url=as_file_url(tmp_path, "f.tar.gz", good_tar()))
    with pytest.raises(ChecksumError, match="remove"):
        download(FACADES, tmp_path, sha256="0" * 64)
    assert done.folder.is_dir()


@pytest.mark.parametrize("members, reason", [
    ([("facades/train/1.jpg", "file", b"ok"), ("{outside}/abs.txt", "file", b"x")], "absolute path"),
    ([("facades/" + "../" * 5 + "escape.txt", "file", b"x")], "'..' component"),
    ([("facades/link", "sym", "{outside}"), ("facades/link/pwned.txt", "file", b"x")], "is a link"),
    ([("facades/hard", "hard", "../../../../escape.txt")], "is a link"),
    ([("facades/fifo", "fifo", "")], "special file"),
    ([("facades/tty", "char", "")], "special file"),
], ids=["absolute", "dotdot", "symlink", "hardlink", "fifo", "device"])
def test_unsafe_tar_members_are_refused(tmp_path, members, reason):
    outside = tmp_path / "outside"
    outside.mkdir()
    members = [(n.format(outside=outside), k, p.format(outside=outside) if isinstance(p, str) else p)
               for n, k, p in members]
    target = tmp_path / "dl"
    with pytest.raises(UnsafeArchiveError, match=reason) as err:
        download(FACADES, target, url=as_file_url(tmp_path, "evil.tar.gz", tar_gz(members)))
    assert "facades.tar.gz" in str(err.value)  # names the archive, and the member
    assert list(outside.iterdir()) == [] and not (tmp_path / "escape.txt").exists()
    assert_nothing_left(target, "pix2pix")


@pytest.mark.parametrize("members, limits, reason", [
    ([("toy/../../escape.txt", b"x", 0)], Limits(), "'..' component"),
    ([("/tmp/i2i-abs-escape.txt", b"x", 0)], Limits(), "absolute path"),
    ([("toy/link", b"/etc", stat.S_IFLNK | 0o777)], Limits(), "symbolic link"),
    ([("toy/zeros.bin", bytes(3 << 20), 0)], Limits(max_member_bytes=1 << 20), "per-member limit"),
    ([(f"toy/{i}.bin", bytes(600_000), 0) for i in range(3)], Limits(max_unpacked_bytes=1 << 20), "unpacked"),
    ([(f"toy/{i}.txt", b"x", 0) for i in range(5)], Limits(max_members=4), "more than 4 members"),
], ids=["dotdot", "absolute", "symlink", "bomb-member", "bomb-total", "too-many"])
def test_unsafe_zip_members_are_refused(tmp_path, members, limits, reason):
    target = tmp_path / "dl"
    data = zip_bytes(members)
    assert len(data) < 50_000  # the bombs are small on the wire
    with pytest.raises(UnsafeArchiveError, match=reason):
        download(TOY, target, url=as_file_url(tmp_path, "evil.zip", data), limits=limits)
    assert not (tmp_path / "escape.txt").exists() and not Path("/tmp/i2i-abs-escape.txt").exists()
    assert_nothing_left(target, "cyclegan")


def test_an_archive_larger_than_the_limit_is_refused_before_unpacking(server, tmp_path):
    with pytest.raises(UnsafeArchiveError, match="above the limit"):
        download(FACADES, tmp_path, url=serve(server, "big.tar.gz", good_tar()), limits=Limits(max_archive_bytes=100))
    assert_nothing_left(tmp_path, "pix2pix")


def test_a_connection_cut_short_leaves_nothing_complete_looking(server, tmp_path):
    serve(server, "cut.tar.gz", good_tar())
    with pytest.raises(DownloadError, match="ended after"):
        download(FACADES, tmp_path, url=f"{server[1]}/truncated/cut.tar.gz")
    assert_nothing_left(tmp_path, "pix2pix")


def test_a_truncated_archive_fails_in_extraction_and_leaves_nothing(tmp_path):
    data = tar_gz([(f"facades/train/{i}.jpg", "file", bytes(range(256)) * 400) for i in range(4)])
    target = tmp_path / "dl"
    with pytest.raises(DownloadError, match="damaged or truncated"):
        download(FACADES, target, url=as_file_url(tmp_path, "cut.tar.gz", data[: len(data) // 2]))
    assert_nothing_left(target, "pix2pix")


def test_leftovers_of_a_killed_run_are_replaced_and_a_hand_made_folder_is_kept(tmp_path):
    parent = tmp_path / "pix2pix"
    (parent / ".facades.tmp-killed").mkdir(parents=True)
    (parent / ".facades.tmp-killed" / "half.jpg").write_bytes(b"half")
    (parent / ".facades.tar.gz.part").write_bytes(b"half an archive")
    done = download(FACADES, tmp_path, url=as_file_url(tmp_path, "f.tar.gz", good_tar()))
    assert sorted(p.name for p in parent.iterdir()) == ["facades", "facades.download.json"]
    cyclegan = tmp_path / "cyclegan" / "toy"
    cyclegan.mkdir(parents=True)
    with pytest.raises(DownloadError, match="not unpacked by this command"):
        download(TOY, tmp_path, url=as_file_url(tmp_path, "toy.zip", good_zip()))
    assert done.folder.is_dir() and list(cyclegan.iterdir()) == []


def test_an_unreachable_host_fails_at_once_with_the_manual_route(tmp_path):
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/toy.zip"
    start = time.monotonic()
    with pytest.raises(DownloadError) as err:
        download(TOY, tmp_path, url=url, timeout=2.0)
    assert time.monotonic() - start < 2.0
    message = str(err.value)
    assert url in message and "file:///" in message and "trainA/ trainB/ testA/ testB/" in message
    assert str(tmp_path / "cyclegan" / "toy") in message
    assert_nothing_left(tmp_path, "cyclegan")


def test_names_resolve_by_collection_or_alone():
    assert find_archive("horse2zebra").key == "cyclegan/horse2zebra"
    assert find_archive("pix2pix/facades").url == "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/facades.tar.gz"
    with pytest.raises(DownloadError, match="pix2pix/facades, cyclegan/facades"):
        find_archive("facades")
    with pytest.raises(DownloadError, match="unknown data set"):
        find_archive("horse2unicorn")
    assert all(a.sha256 is None for a in ARCHIVES.values() if a.collection == "pix2pix")
    assert all(len(a.sha256) == 64 and a.url.endswith(".zip") for a in ARCHIVES.values() if a.collection == "cyclegan")


def test_command_lists_downloads_and_exits_1_on_errors(tmp_path):
    from typer.testing import CliRunner

    from stages.__main__ import app

    runner = CliRunner()
    listed = runner.invoke(app, ["download", "--list"])
    assert listed.exit_code == 0 and "cyclegan/horse2zebra" in listed.output and "pix2pix/night2day" in listed.output
    url = as_file_url(tmp_path, "f.tar.gz", good_tar())
    ok = runner.invoke(app, ["download", "pix2pix/facades", "--target", str(tmp_path / "dl"), "--url", url])
    assert ok.exit_code == 0, ok.output
    assert "trust on first use" in ok.output and str(tmp_path / "dl" / "pix2pix" / "facades") in ok.output
    again = runner.invoke(app, ["download", "pix2pix/facades", "--target", str(tmp_path / "dl")])
    assert again.exit_code == 0 and "already complete" in again.output
    bad = runner.invoke(app, ["download", "pix2pix/facades", "--target", str(tmp_path / "dl2"), "--url", url,
                              "--sha256", "0" * 64])
    assert bad.exit_code == 1
