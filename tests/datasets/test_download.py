"""helpers.data.download against an HTTP server on 127.0.0.1 that misbehaves on purpose:
truncation (then resume), Range ignored, 416, a part from the wrong offset, no Content-Length,
an HTML page served with 200, a damaged zip, a truncated tar.gz, a trickling server; and the
cached-file and checksum rules."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from helpers.data import registry
from helpers.data.download import DownloadError, check_archive, download, recorded_sha256


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("set/a.bin", np.random.default_rng(0).bytes(600_000))
        archive.writestr("set/b.txt", b"hello" * 1000)
    return buffer.getvalue()


def _tgz_bytes() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        payload = np.random.default_rng(1).bytes(300_000)
        info = tarfile.TarInfo("set/a.bin")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


PAYLOAD = _zip_bytes()
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()
DAMAGED = bytearray(PAYLOAD)
DAMAGED[1000] ^= 0xFF  # inside a.bin's stored data: the structure is intact, the CRC is not
DAMAGED = bytes(DAMAGED)
TGZ = _tgz_bytes()
HTML = b"<html>Please log in</html>\n"  # 27 bytes, like the error page seen in the wild


class Handler(BaseHTTPRequestHandler):
    """One path per behaviour; see the docstring of the module."""

    seen_ranges: list[str | None] = []
    flaky_calls = 0

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, body: bytes, status=200, headers=None, length=True):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        Handler.seen_ranges.append(self.headers.get("Range"))
        path = self.path
        range_header = self.headers.get("Range")
        start = int(range_header.split("=")[1].rstrip("-")) if range_header else 0
        try:
            if path in ("/good.zip", "/flaky.zip"):
                if start >= len(PAYLOAD):
                    self._send(b"", 416)
                    return
                body = PAYLOAD[start:]
                headers = {"Content-Type": "application/zip"}
                if start:
                    headers["Content-Range"] = f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"
                if path == "/flaky.zip" and Handler.flaky_calls == 0:
                    Handler.flaky_calls += 1
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                    return
                self._send(body, 206 if start else 200, headers)
            elif path == "/norange.zip":
                self._send(PAYLOAD)
            elif path == "/wrongoffset.zip":  # answers every Range with a part that starts at 0
                if range_header:
                    self._send(PAYLOAD, 206, {"Content-Range": f"bytes 0-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"})
                else:
                    self._send(PAYLOAD)
            elif path == "/nolength.zip":  # no Content-Length, connection closes after half
                self.protocol_version = "HTTP/1.0"
                self._send(PAYLOAD[: len(PAYLOAD) // 2], length=False)
                self.close_connection = True
            elif path == "/page.zip":
                self._send(HTML, headers={"Content-Type": "text/html; charset=utf-8"})
            elif path == "/page-octet.zip":
                self._send(HTML, headers={"Content-Type": "application/octet-stream"})
            elif path == "/damaged.zip":
                self._send(DAMAGED)
            elif path == "/good.tar.gz":
                self._send(TGZ)
            elif path == "/truncated.tar.gz":
                self._send(TGZ[: len(TGZ) * 2 // 3])
            elif path == "/slow.zip":  # a byte every 0.2 s, forever
                self.send_response(200)
                self.send_header("Content-Length", str(len(PAYLOAD)))
                self.end_headers()
                for index in range(len(PAYLOAD)):
                    self.wfile.write(PAYLOAD[index:index + 1])
                    self.wfile.flush()
                    time.sleep(0.2)
            else:
                self.send_error(404)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture()
def server():
    Handler.seen_ranges = []
    Handler.flaky_calls = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _nothing_installed(folder, name):
    return not (folder / name).exists() and not (folder / f"{name}.part").exists()


def test_good_download_with_checksum_records_the_sha256(server, tmp_path):
    target = download(f"{server}/good.zip", tmp_path / "good.zip", sha256=DIGEST)
    assert target.read_bytes() == PAYLOAD
    assert not (tmp_path / "good.zip.part").exists()
    assert recorded_sha256(target) == DIGEST
    # a complete, verified file is reused without a request
    count = len(Handler.seen_ranges)
    download(f"{server}/good.zip", tmp_path / "good.zip", sha256=DIGEST)
    assert len(Handler.seen_ranges) == count


def test_truncated_download_fails_then_resumes(server, tmp_path):
    target = tmp_path / "flaky.zip"
    with pytest.raises(DownloadError, match="run the same command again to resume"):
        download(f"{server}/flaky.zip", target, help_text="HELP")
    assert not target.exists(), "an incomplete download must not be renamed into place"
    partial = tmp_path / "flaky.zip.part"
    assert 0 < partial.stat().st_size < len(PAYLOAD)
    download(f"{server}/flaky.zip", target)
    assert target.read_bytes() == PAYLOAD
    assert Handler.seen_ranges[-1] == f"bytes={len(PAYLOAD) // 2}-", "the second request should resume"


def test_server_that_ignores_range_restarts_the_file(server, tmp_path):
    (tmp_path / "norange.zip.part").write_bytes(b"garbage")
    download(f"{server}/norange.zip", tmp_path / "norange.zip", sha256=DIGEST)
    assert (tmp_path / "norange.zip").read_bytes() == PAYLOAD


def test_416_restarts_instead_of_installing_the_partial_file(server, tmp_path):
    (tmp_path / "good.zip.part").write_bytes(PAYLOAD + b"stale bytes of another version")
    download(f"{server}/good.zip", tmp_path / "good.zip")
    assert (tmp_path / "good.zip").read_bytes() == PAYLOAD
    assert Handler.seen_ranges[-1] is None, "after the 416 the file is fetched from byte 0"


def test_part_from_the_wrong_offset_is_not_appended(server, tmp_path):
    (tmp_path / "wrongoffset.zip.part").write_bytes(PAYLOAD[:1000])
    download(f"{server}/wrongoffset.zip", tmp_path / "wrongoffset.zip")
    assert (tmp_path / "wrongoffset.zip").read_bytes() == PAYLOAD


@pytest.mark.parametrize("name, message", [
    ("nolength.zip", "zip archive is damaged"),
    ("page.zip", r"answered with a web page \(text/html"),
    ("page-octet.zip", r"web page \(HTML\), not an archive"),
    ("damaged.zip", "fails its CRC check"),
    ("truncated.tar.gz", "tar archive is damaged or truncated"),
])
def test_bad_bodies_are_never_installed(server, tmp_path, name, message):
    with pytest.raises(DownloadError, match=message) as error:
        download(f"{server}/{name}", tmp_path / name, help_text="fetch it by hand")
    assert "fetch it by hand" in str(error.value)
    assert _nothing_installed(tmp_path, name)


def test_good_tar_gz_is_read_through_and_installed(server, tmp_path):
    assert download(f"{server}/good.tar.gz", tmp_path / "good.tar.gz").read_bytes() == TGZ


def test_a_trickling_server_is_stopped(server, tmp_path):
    with pytest.raises(DownloadError, match="too slow"):
        download(f"{server}/slow.zip", tmp_path / "slow.zip", timeout=1.0)
    assert not (tmp_path / "slow.zip").exists()


@pytest.mark.parametrize("cached", [HTML, PAYLOAD[:5000], DAMAGED])
def test_a_bad_cached_file_is_downloaded_again(server, tmp_path, cached):
    (tmp_path / "good.zip").write_bytes(cached)
    download(f"{server}/good.zip", tmp_path / "good.zip")
    assert (tmp_path / "good.zip").read_bytes() == PAYLOAD
    assert recorded_sha256(tmp_path / "good.zip") == DIGEST


def test_a_cached_file_changed_since_its_download_is_downloaded_again(server, tmp_path):
    download(f"{server}/good.zip", tmp_path / "good.zip")
    other = io.BytesIO()
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("x.txt", "another archive")
    (tmp_path / "good.zip").write_bytes(other.getvalue())  # a valid zip, but not what was installed
    download(f"{server}/good.zip", tmp_path / "good.zip")
    assert (tmp_path / "good.zip").read_bytes() == PAYLOAD


def test_wrong_checksum_deletes_the_file(server, tmp_path):
    with pytest.raises(DownloadError, match="expected 0000") as error:
        download(f"{server}/good.zip", tmp_path / "bad.zip", sha256="0" * 64, help_text="fetch it by hand")
    assert "fetch it by hand" in str(error.value)
    assert _nothing_installed(tmp_path, "bad.zip")


def test_missing_file_and_offline_give_instructions(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server}/missing.zip", tmp_path / "m.zip")
    with pytest.raises(DownloadError, match="offline"):
        download("http://127.0.0.1:9/nothing.zip", tmp_path / "n.zip", timeout=2)


def test_check_archive_names_gzip_and_plain_tar(tmp_path):
    (tmp_path / "a.tar.gz").write_bytes(gzip.compress(b"not a tar at all" * 100))
    assert "tar archive is damaged" in check_archive(tmp_path / "a.tar.gz", "tar")
    (tmp_path / "b.tar").write_bytes(b"x" * 1024)
    assert "does not start like a tar archive" in check_archive(tmp_path / "b.tar", "tar")


def test_fetch_without_url_says_where_to_get_the_files(tmp_path):
    with pytest.raises(DownloadError) as error:
        registry.fetch("brats2020", tmp_path)
    message = str(error.value)
    assert "https://www.med.upenn.edu/cbica/brats2020" in message
    assert "python -m helpers data prepare brats2020" in message


def test_fetch_uses_the_registered_url(tmp_path):
    calls = []

    def fake(url, target, sha256=None, help_text=""):
        calls.append((url, target.name))
        return target

    registry.fetch("montgomery", tmp_path, downloader=fake)
    assert calls == [(registry.DATASETS["montgomery"].url, "NLM-MontgomeryCXRSet.zip")]


def test_cli_download_prints_the_recorded_sha256(server, tmp_path, monkeypatch, capsys):
    import dataclasses

    from helpers.data.__main__ import main

    entry = dataclasses.replace(registry.DATASETS["montgomery"], url=f"{server}/good.zip")
    monkeypatch.setitem(registry.DATASETS, "montgomery", entry)
    assert main(["download", "montgomery", "--to", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"SHA-256: {DIGEST}" in out
    assert (tmp_path / "NLM-MontgomeryCXRSet.zip.sha256").read_text().split()[0] == DIGEST
    monkeypatch.setitem(registry.DATASETS, "montgomery", dataclasses.replace(entry, url=f"{server}/page.zip"))
    (tmp_path / "NLM-MontgomeryCXRSet.zip").write_bytes(HTML)  # a cached error page is not reused
    assert main(["download", "montgomery", "--to", str(tmp_path)]) == 2
    assert "web page" in capsys.readouterr().err
    assert not (tmp_path / "NLM-MontgomeryCXRSet.zip").exists()
