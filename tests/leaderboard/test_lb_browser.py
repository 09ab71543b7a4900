"""The built site in real headless Chromium, driven over the DevTools protocol.

Chromium is Debian's package (``scripts/install_chromium.sh`` installs it when
missing; the test is skipped when it cannot be installed). The page is served
from 127.0.0.1 and also opened from a ``file://`` URL; the test takes a
screenshot, checks that the table lists every entry, and clicks column headers
with real mouse events to sort.
"""

from __future__ import annotations

import base64
import functools
import json
import shutil
import subprocess
import threading
import time
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from knowgen.leaderboard import load_entries, seed_board

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ws_sync = pytest.importorskip("websockets.sync.client")

ROOT = Path(__file__).resolve().parents[2]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
         "--window-size=1280,900"]


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        try:
            subprocess.run(["bash", str(ROOT / "scripts" / "install_chromium.sh")], check=True,
                           timeout=900, capture_output=True)
        except (subprocess.SubprocessError, OSError) as exc:
            pytest.skip(f"chromium is not installed and could not be installed: {exc}")
        path = shutil.which("chromium")
    if path is None:
        pytest.skip("chromium is not installed")
    return path


class DevTools:
    """A minimal Chrome DevTools protocol client over one page's websocket."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=30))
            if msg.get("id") == self.next_id:
                assert "error" not in msg, msg
                return msg["result"]

    def eval(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression}")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete'")

    def click(self, selector: str, text: str) -> None:
        """A real left click in the middle of the element matching ``selector`` and ``text``."""
        box = self.eval(f"""(() => {{
            const el = [...document.querySelectorAll({json.dumps(selector)})]
                .find(e => e.textContent.trim() === {json.dumps(text)});
            el.scrollIntoView({{block: "center"}});
            const r = el.getBoundingClientRect();
            return {{x: r.x + r.width / 2, y: r.y + r.height / 2}};
        }})()""")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"],
                      button="left", clickCount=1)


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert proc.poll() is None and time.monotonic() < deadline, "chromium did not start"
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            pages = [t for t in json.load(resp) if t["type"] == "page"]
        with ws_sync.connect(pages[0]["webSocketDebuggerUrl"], max_size=2**26,
                             open_timeout=20) as ws:
            yield DevTools(ws)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def site(chromium, world_runs, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser_site")
    seed_board(world_runs["runs"].values(), root / "board", root / "site")
    return {"site": root / "site", "entries": load_entries(root / "board")}


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(site["site"]))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _column(browser: DevTools, header: str) -> list[str]:
    return browser.eval(f"""(() => {{
        const table = document.querySelector("table.board");
        const th = [...table.querySelectorAll("thead th")]
            .find(h => h.textContent.trim() === {json.dumps(header)});
        return [...table.tBodies[0].rows].map(r => r.cells[th.cellIndex].getAttribute("data-value"));
    }})()""")


def _aria(browser: DevTools, header: str) -> str | None:
    return browser.eval(f"""[...document.querySelectorAll("table.board thead th")]
        .find(h => h.textContent.trim() === {json.dumps(header)}).getAttribute("aria-sort")""")


def test_index_lists_every_entry_and_sorts_on_click(browser, server, site, tmp_path):
    browser.open(f"{server}/index.html")
    shown = browser.eval('[...document.querySelectorAll("table.board tbody tr")]'
                         ".map(r => r.dataset.entry)")
    assert sorted(shown) == sorted(e["entry_id"] for e in site["entries"])
    shot = tmp_path / "index.png"
    shot.write_bytes(base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"]))
    with Image.open(shot) as im:
        assert im.size[0] >= 1000 and im.size[1] >= 600
        assert max(ImageStat.Stat(im.convert("L")).stddev) > 10  # not a blank page

    scores = sorted(float(e["scores"]["headline"]) for e in site["entries"])
    browser.click("table.board thead th button", "K-Score")
    assert [float(v) for v in _column(browser, "K-Score")] == scores
    assert _aria(browser, "K-Score") == "ascending"
    browser.click("table.board thead th button", "K-Score")
    assert [float(v) for v in _column(browser, "K-Score")] == scores[::-1]
    assert _aria(browser, "K-Score") == "descending"
    browser.click("table.board thead th button", "System")
    names = _column(browser, "System")
    assert names == sorted(names, key=str.lower) and _aria(browser, "K-Score") is None


def test_entry_page_shows_generated_next_to_ground_truth(browser, server, site):
    browser.open(f"{server}/index.html")
    top = max(site["entries"], key=lambda e: e["scores"]["headline"])
    browser.click("table.board tbody a", top["submission"]["system"])
    browser.wait_for(f"location.pathname.endsWith('/entries/{top['entry_id']}.html')")
    browser.wait_for("document.readyState === 'complete'")
    n_cards = browser.eval("document.querySelectorAll('.card').length")
    assert n_cards == len(top["samples"])
    browser.wait_for("[...document.querySelectorAll('.card')[0].querySelectorAll('img')]"
                     ".every(i => i.complete && i.naturalWidth > 0)")
    captions = browser.eval("[...document.querySelectorAll('.card')[0]"
                            ".querySelectorAll('figcaption')].map(f => f.textContent)")
    assert captions == ["generated", "ground truth"]


def test_site_works_from_a_file_url(browser, site):
    browser.open((site["site"] / "index.html").resolve().as_uri())
    assert browser.eval("document.querySelectorAll('table.board tbody tr').length") \
        == len(site["entries"])
    browser.click("table.board thead th button", "K-Score")
    values = [float(v) for v in _column(browser, "K-Score")]
    assert values == sorted(values)


def test_index_fits_1400_px_without_sideways_scroll_and_one_scale(browser, server, site,
                                                                   tmp_path):
    browser.call("Emulation.setDeviceMetricsOverride", width=1400, height=900,
                 deviceScaleFactor=1, mobile=False)
    try:
        browser.open(f"{server}/index.html")
        widths = browser.eval("""({page: document.documentElement.scrollWidth,
            view: document.documentElement.clientWidth,
            tables: [...document.querySelectorAll('.scroll')]
                .map(s => s.scrollWidth - s.clientWidth)})""")
        shot = tmp_path / "index-1400.png"
        shot.write_bytes(base64.b64decode(
            browser.call("Page.captureScreenshot", format="png")["data"]))
        assert widths["view"] == 1400 and widths["page"] <= 1400, widths
        assert widths["tables"] and max(widths["tables"]) <= 0, widths  # no table scrolls sideways
        # the judge is named once per table, in its heading
        cells = browser.eval("[...document.querySelectorAll('table.board td')]"
                             ".map(td => td.textContent)")
        assert not any("offline" in c for c in cells)
        assert "offline (offline)" not in browser.eval("document.body.textContent")
        # one scale: the K-Score and group columns x100, and so are the entry pages' samples
        top = max(site["entries"], key=lambda e: e["scores"]["headline"])
        browser.open(f"{server}/entries/{top['entry_id']}.html")
        first = browser.eval("document.querySelector('.card .scores').textContent")
        sample = top["samples"][0]
        assert first.startswith(f"overall {100 * sample['overall']:.2f}") and "(x100)" in first
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride")
