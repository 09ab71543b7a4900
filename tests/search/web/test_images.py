"""The safe image downloader: validation, conversion, caps, cache (real images, local server)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile
from webtools import Reply, mapping_resolver, world_image

from knowgen.errors import ToolError
from knowgen.search.images import ImageCandidate, ImageDownloader, decode_image


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming ``width`` x ``height`` pixels, with almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.fixture
def downloader(tmp_path, web):
    return ImageDownloader(tmp_path / "cache", allow_hosts=[web.url()], max_side=128,
                           max_bytes=200_000, max_pixels=1_000_000, backoff_base=0)


def test_real_image_is_converted_resized_and_cached(web, downloader):
    original = world_image("flag-bf.png")
    web.route("/flag.png", Reply(200, original, {"Content-Type": "image/png"}))
    hit = downloader.fetch(web.url("/flag.png"), title="Flag", page_url="https://p/")
    with Image.open(hit.local_path) as img:
        assert img.format == "PNG" and img.mode == "RGB"
        assert max(img.size) == 128
        src = Image.open(io.BytesIO(original))
        assert img.size[0] / img.size[1] == pytest.approx(src.size[0] / src.size[1], rel=0.02)
        small = np.asarray(src.convert("RGB").resize(img.size, Image.Resampling.LANCZOS), float)
        assert np.abs(np.asarray(img, float) - small).mean() < 8
    assert hit.title == "Flag" and hit.page_url == "https://p/" and hit.url == web.url("/flag.png")
    assert hit.image_id and hit.local_path == str(downloader.path_for(hit.url).resolve())
    again = downloader.fetch(web.url("/flag.png"))
    assert again.local_path == hit.local_path and again.title == "flag.png"
    assert len(web.hits("/flag.png")) == 1  # the second fetch came from the cache


def test_transparency_is_flattened_on_white_and_exif_orientation_applied(web, downloader):
    rgba = Image.new("RGBA", (40, 20), (255, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (0, 0, 20, 20))
    web.route("/t.png", Reply(200, png_bytes(rgba), {"Content-Type": "image/png"}))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    jpg = io.BytesIO()
    Image.new("RGB", (60, 30), (0, 128, 0)).save(jpg, format="JPEG", exif=exif)
    web.route("/r.jpg", Reply(200, jpg.getvalue(), {"Content-Type": "image/jpeg"}))
    with Image.open(downloader.fetch(web.url("/t.png")).local_path) as img:
        assert img.getpixel((5, 5)) == (0, 0, 255)
        assert img.getpixel((35, 5)) == (255, 255, 255)
    with Image.open(downloader.fetch(web.url("/r.jpg")).local_path) as img:
        assert img.size == (30, 60)


def test_generic_binary_type_is_left_to_the_decoder(web, downloader):
    web.route("/blob", Reply(200, world_image("logo-accenture.png"),
                             {"Content-Type": "application/octet-stream"}))
    assert Image.open(downloader.fetch(web.url("/blob")).local_path).size == (128, 128)


@pytest.mark.parametrize("body,ctype,fragment", [
    ("<html><body>not an image</body></html>", "text/html", "web page"),
    ('<svg xmlns="http://www.w3.org/2000/svg"/>', "image/svg+xml", "SVG"),
    ('{"a": 1}', "application/json", "application/json"),
    (b"GIF89a\x00\x00garbage", "image/gif", "not a readable image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image/png", "not a readable image"),
    (b"%PDF-1.4 hello", "application/octet-stream", "not a readable image"),
])
def test_non_images_are_refused(web, downloader, body, ctype, fragment):
    web.route("/x", Reply(200, body, {"Content-Type": ctype}))
    with pytest.raises(ToolError, match=fragment):
        downloader.fetch(web.url("/x"))
    assert not downloader.path_for(web.url("/x")).exists()


def test_truncated_image_is_refused(web, downloader):
    data = world_image("flag-bf.png")
    web.route("/cut.png", Reply(200, data[: len(data) // 2], {"Content-Type": "image/png"}))
    with pytest.raises(ToolError, match="not a readable image"):
        downloader.fetch(web.url("/cut.png"))


def test_oversized_download_is_refused(web, downloader):
    noise = np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8)
    big = png_bytes(Image.fromarray(noise))
    assert len(big) > 200_000
    web.route("/big.png", Reply(200, big, {"Content-Type": "image/png"}))
    web.route("/big-stream.png", Reply(200, big, {"Content-Type": "image/png"},
                                       content_length=False))
    with pytest.raises(ToolError, match="too large"):
        downloader.fetch(web.url("/big.png"))
    with pytest.raises(ToolError, match="larger than the limit"):
        downloader.fetch(web.url("/big-stream.png"))


def test_decompression_bomb_header_is_refused_before_decoding(web, downloader, monkeypatch):
    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load",
                        lambda self: decoded.append(self.size) or real_load(self))
    bomb = bomb_png(50_000, 50_000)
    assert len(bomb) < 200
    web.route("/bomb.png", Reply(200, bomb, {"Content-Type": "image/png"}))
    with pytest.raises(ToolError, match="too large to use"):
        downloader.fetch(web.url("/bomb.png"))
    assert decoded == []
    # Just over the downloader's own cap, far below Pillow's built-in limit:
    with pytest.raises(ToolError, match="1001x1000 pixels"):
        decode_image(bomb_png(1001, 1000), max_pixels=1_000_000, max_side=64)
    assert decoded == []


def test_refused_urls_and_errors_are_tool_errors(web, downloader, loopback_only):
    web.route("/gone.png", Reply(404, "no"))
    with pytest.raises(ToolError, match="metadata"):
        downloader.fetch("http://169.254.169.254/latest/meta-data/iam")
    with pytest.raises(ToolError, match="only http"):
        downloader.fetch("file:///etc/passwd")
    with pytest.raises(ToolError, match="No image URL"):
        downloader.fetch("  ")
    with pytest.raises(ToolError, match=r"HTTP 404"):
        downloader.fetch(web.url("/gone.png"))
    assert all(addr[0] == "127.0.0.1" for addr in loopback_only)
    guarded = ImageDownloader(downloader.cache_dir,
                              resolver=mapping_resolver({"cdn.test": ["192.168.7.7"]}))
    with pytest.raises(ToolError, match="private"):
        guarded.fetch("https://cdn.test/a.png")


def test_fetch_many_keeps_order_uses_fallbacks_and_reports_total_failure(web, downloader):
    web.route("/a.png", Reply(200, world_image("flag-bf.png"), {"Content-Type": "image/png"}))
    web.route("/b.png", Reply(200, world_image("flag-fr.png"), {"Content-Type": "image/png"}))
    web.route("/thumb.png", Reply(200, world_image("flag-de.png"), {"Content-Type": "image/png"}))
    web.route("/page.html", Reply(200, "<html></html>"))
    cands = [
        ImageCandidate(web.url("/missing.png"), "m", fallback_urls=(web.url("/thumb.png"),)),
        ImageCandidate(web.url("/page.html"), "page"),
        ImageCandidate(web.url("/a.png"), "a", score=0.5),
        ImageCandidate(web.url("/b.png"), "b"),
    ]
    hits = downloader.fetch_many(cands, top_k=2)
    assert [h.title for h in hits] == ["m", "a"]
    assert hits[0].url == web.url("/thumb.png") and hits[1].score == 0.5
    assert downloader.fetch_many([], 3) == []
    with pytest.raises(ToolError, match="Found 2 images but none could be downloaded"):
        downloader.fetch_many([ImageCandidate(web.url("/page.html")),
                               ImageCandidate("http://10.0.0.1/x.png")], top_k=2)


def test_unwritable_cache_is_a_tool_error(web, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    web.route("/a.png", Reply(200, world_image(), {"Content-Type": "image/png"}))
    broken = ImageDownloader(blocker / "cache", allow_hosts=[web.url()])
    with pytest.raises(ToolError, match="not writable"):
        broken.fetch(web.url("/a.png"))
