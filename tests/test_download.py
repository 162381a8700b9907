"""helpers.data.download against an HTTP server on 127.0.0.1 serving fixture archives:
a good one, a truncated one (then resumed), and one whose checksum does not match."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpers.data import registry
from helpers.data.download import DownloadError, download

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB of known bytes
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(BaseHTTPRequestHandler):
    """/good.zip honours Range; /flaky.zip sends half and hangs up on its first request;
    /norange.zip ignores Range; anything else is 404."""

    seen_ranges: list[str | None] = []
    flaky_calls = 0

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        Handler.seen_ranges.append(self.headers.get("Range"))
        if self.path not in ("/good.zip", "/flaky.zip", "/norange.zip"):
            self.send_error(404)
            return
        start = 0
        range_header = self.headers.get("Range")
        if range_header and self.path != "/norange.zip":
            start = int(range_header.split("=")[1].rstrip("-"))
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path == "/flaky.zip" and Handler.flaky_calls == 0:
            Handler.flaky_calls += 1
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture()
def server():
    Handler.seen_ranges = []
    Handler.flaky_calls = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_good_download_with_checksum(server, tmp_path):
    target = download(f"{server}/good.zip", tmp_path / "good.zip", sha256=DIGEST)
    assert target.read_bytes() == PAYLOAD
    assert not (tmp_path / "good.zip.part").exists()
    # a complete file is reused without a request
    count = len(Handler.seen_ranges)
    download(f"{server}/good.zip", tmp_path / "good.zip", sha256=DIGEST)
    assert len(Handler.seen_ranges) == count


def test_truncated_download_fails_then_resumes(server, tmp_path):
    target = tmp_path / "flaky.zip"
    with pytest.raises(DownloadError, match="run the same command again to resume"):
        download(f"{server}/flaky.zip", target, sha256=DIGEST, help_text="HELP")
    assert not target.exists(), "an incomplete download must not be renamed into place"
    partial = tmp_path / "flaky.zip.part"
    assert 0 < partial.stat().st_size < len(PAYLOAD)
    download(f"{server}/flaky.zip", target, sha256=DIGEST)
    assert target.read_bytes() == PAYLOAD
    assert Handler.seen_ranges[-1] == f"bytes={len(PAYLOAD) // 2}-", "the second request should resume"


def test_server_that_ignores_range_restarts_the_file(server, tmp_path):
    (tmp_path / "norange.zip.part").write_bytes(b"garbage")
    download(f"{server}/norange.zip", tmp_path / "norange.zip", sha256=DIGEST)
    assert (tmp_path / "norange.zip").read_bytes() == PAYLOAD


def test_wrong_checksum_deletes_the_file(server, tmp_path):
    with pytest.raises(DownloadError, match="corrupt") as error:
        download(f"{server}/good.zip", tmp_path / "bad.zip", sha256="0" * 64, help_text="fetch it by hand")
    assert "fetch it by hand" in str(error.value)
    assert not (tmp_path / "bad.zip").exists() and not (tmp_path / "bad.zip.part").exists()


def test_missing_file_and_offline_give_instructions(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server}/missing.zip", tmp_path / "m.zip")
    with pytest.raises(DownloadError, match="offline"):
        download("http://127.0.0.1:9/nothing.zip", tmp_path / "n.zip", timeout=2)


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
