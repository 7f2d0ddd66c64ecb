"""Static files: yt-dlp (in-process, generic extractor) downloads the sample; the big file is refused;
the cat picture is a JPEG."""

from __future__ import annotations

import struct
import time

import requests
import yt_dlp

from bot.sandbox.files import BIG_SIZE, STATIC_DIR

LIMIT = 50 * 1024 * 1024


def download(url: str, out_dir) -> dict:
    options = {
        "outtmpl": str(out_dir / "%(id)s.%(ext)s"),
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "noplaylist": True,
        "max_filesize": LIMIT,
        "socket_timeout": 20,
    }
    with yt_dlp.YoutubeDL(options) as ydl:
        return ydl.extract_info(url, download=True)


def test_yt_dlp_downloads_sample_mp4(sandbox, tmp_path):
    info = download(f"{sandbox.url}/files/sample.mp4", tmp_path)
    assert info["extractor"] == "generic" and info["ext"] == "mp4"
    [path] = [d["filepath"] for d in info["requested_downloads"]]
    assert open(path, "rb").read() == (STATIC_DIR / "sample.mp4").read_bytes()


def test_yt_dlp_finds_the_video_in_an_html_page(sandbox, tmp_path):
    info = download(f"{sandbox.url}/files/video.html", tmp_path)
    [path] = [d["filepath"] for d in info["requested_downloads"]]
    assert open(path, "rb").read() == (STATIC_DIR / "sample.mp4").read_bytes()


def test_big_file_announces_over_50_mb_and_yt_dlp_skips_it(sandbox, tmp_path):
    head = requests.head(f"{sandbox.url}/files/big.mp4", timeout=10)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == BIG_SIZE > LIMIT
    info = download(f"{sandbox.url}/files/big.mp4", tmp_path)
    # yt-dlp does not raise: the result just has no downloaded file
    assert not any(d.get("filepath") for d in info.get("requested_downloads") or [])
    assert list(tmp_path.iterdir()) == []


def test_big_file_streams_exactly_its_length(sandbox):
    with requests.get(f"{sandbox.url}/files/big.mp4", stream=True, timeout=30) as response:
        total = sum(len(chunk) for chunk in response.iter_content(1024 * 1024))
    assert total == BIG_SIZE


def test_unknown_file_is_404_and_bad_delay_400(sandbox):
    assert requests.get(f"{sandbox.url}/files/nothing.mp4", timeout=10).status_code == 404
    assert requests.get(f"{sandbox.url}/files/slow.mp4?delay=1000", timeout=10).status_code == 400
    response = requests.get(f"{sandbox.url}/files/slow.mp4?delay=0", timeout=10)
    assert response.content == (STATIC_DIR / "sample.mp4").read_bytes()


def sof0_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the baseline frame header; walks the JPEG marker segments."""
    pos = 2
    while pos + 4 <= len(data):
        assert data[pos] == 0xFF, f"no marker at {pos}"
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xC0:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    raise AssertionError("no SOF0 segment")


def test_cat_jpg_is_the_shipped_jpeg(sandbox):
    response = requests.get(f"{sandbox.url}/files/cat.jpg", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.content == (STATIC_DIR / "cat.jpg").read_bytes()
    assert response.content[:3] == b"\xff\xd8\xff" and response.content.endswith(b"\xff\xd9")
    assert sof0_size(response.content) == (32, 32)
    head = requests.head(f"{sandbox.url}/files/cat.jpg", timeout=10)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(response.content)


def test_chunked_file_has_no_length_and_counts_what_it_sent(sandbox):
    url = f"{sandbox.url}/files/chunked.mp4?mib=1&tag=t-chunked"
    with requests.get(url, stream=True, timeout=30) as response:
        assert "Content-Length" not in response.headers
        assert response.headers["Transfer-Encoding"] == "chunked"
        body = b"".join(response.iter_content(64 * 1024))
    assert len(body) == 2**20 and body[4:8] == b"ftyp"
    assert sandbox.client.health()["streams"]["t-chunked"] == {"open": 0, "max": 1, "bytes": 2**20}
    assert requests.get(f"{sandbox.url}/files/chunked.mp4?mib=65", timeout=10).status_code == 400


def test_drip_is_counted_while_open(sandbox):
    url = f"{sandbox.url}/files/drip.mp4?seconds=5&tag=t-drip"
    with requests.get(url, stream=True, timeout=10) as response:
        assert int(response.headers["Content-Length"]) == 2**20
        assert response.raw.read(33)[4:8] == b"ftyp"
        assert sandbox.client.health()["streams"]["t-drip"]["open"] == 1
    deadline = time.monotonic() + 5  # the sandbox notices the closed connection at its next byte
    while sandbox.client.health()["streams"]["t-drip"]["open"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox.client.health()["streams"]["t-drip"]["open"] == 0


def test_redirect_and_cat_json(sandbox):
    target = f"{sandbox.url}/files/cat.jpg"
    response = requests.get(f"{sandbox.url}/files/redirect", params={"to": target}, allow_redirects=False,
                            timeout=10)
    assert response.status_code == 302 and response.headers["Location"] == target
    loop = requests.get(f"{sandbox.url}/files/redirect", allow_redirects=False, timeout=10)
    assert loop.headers["Location"] == f"{sandbox.url}/files/redirect"
    assert requests.get(f"{sandbox.url}/files/redirect?to=file:///etc/passwd", timeout=10).status_code == 400
    named = requests.get(f"{sandbox.url}/files/cat.json", params={"to": target}, timeout=10).json()
    assert named[0]["url"] == target
    assert "<video" not in requests.get(f"{sandbox.url}/files/page.html", timeout=10).text
