"""The usage dashboard (/dashboard): served from the package, rendered by Debian's headless Chromium.

The page reports its own JavaScript errors into ``#errors`` and its state into ``body[data-state]``;
Chromium's ``--dump-dom`` gives the DOM after the scripts ran, ``--screenshot`` a PNG decoded here
with zlib alone.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import httpx
import pytest

from fakes.openai_upstream import Behaviour, FakeOpenAI
from integration.conftest import ProxyServer, serve_proxy, write_backend
from lip.app import Settings
from lip.dashboard import ASSETS

WIDTH, HEIGHT = 1280, 900
# (model selector, how many requests); one more request to alpha gets an upstream 400.
TRAFFIC = (("alpha:gpt-4o", 3), ("beta:gpt-4o-mini", 2))
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # a name, never fetched


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    config = tmp_path_factory.mktemp("dashboard")
    with FakeOpenAI() as fake:
        write_backend(config, "alpha", f"""\
            backend_type: custom
            api_base_url: {fake.base_url}
            models:
              gpt-4o: {{pricing: {{input_per_million: 2.5, output_per_million: 10}}}}
            """)
        write_backend(config, "beta", f"""\
            backend_type: custom
            api_base_url: {fake.base_url}
            models:
              gpt-4o-mini: {{pricing: {{input_per_million: 0.15, output_per_million: 0.6}}}}
            """)
        with serve_proxy(config, default_backend="alpha") as server:
            for model, count in TRAFFIC:
                for _ in range(count):
                    assert chat(server, model).status_code == 200
            fake.enqueue(Behaviour(status=400, error_message="bad"))
            assert chat(server, "alpha:gpt-4o").status_code == 400
            yield server


def chat(proxy: ProxyServer, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
    return httpx.post(proxy.url + "/v1/chat/completions", json=body, timeout=10)


# ---- assets ----

def test_page_and_assets_are_served_from_the_package(proxy: ProxyServer) -> None:
    package = resources.files("lip.dashboard")
    page = httpx.get(proxy.url + "/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.content == package.joinpath("dashboard.html").read_bytes()
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy and "script-src 'self'" in policy
    expected = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}
    assert expected == ASSETS
    for name, media_type in expected.items():
        response = httpx.get(f"{proxy.url}/dashboard/assets/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == media_type
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.content == package.joinpath(name).read_bytes()
        again = httpx.get(f"{proxy.url}/dashboard/assets/{name}", headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304 and not again.content
    for name in ("dashboard.html", "__init__.py", "nope.js", "..%2f__init__.py"):
        missing = httpx.get(f"{proxy.url}/dashboard/assets/{name}")
        assert missing.status_code == 404, name
        assert missing.json()["error"]["code"] == "unknown_url"


def test_page_references_nothing_outside_its_origin() -> None:
    package = resources.files("lip.dashboard")
    texts = {name: package.joinpath(name).read_text() for name in ("dashboard.html", *ASSETS)}
    for name, text in texts.items():
        urls = set(re.findall(r"""(?:https?:)?//[^\s"'`)<>]+""", text)) - {SVG_NAMESPACE}
        assert not urls, f"{name} names external URLs: {urls}"
        assert "@import" not in text and "url(" not in text.replace("url(data:", ""), name
    links = re.findall(r"""(?:src|href)="([^"]*)\"""", texts["dashboard.html"])
    assert sorted(links) == ["/dashboard/assets/dashboard.css", "/dashboard/assets/dashboard.js", "data:,"]
    fetched = re.findall(r"""fetch\(\s*["'`]([^"'`]*)""", texts["dashboard.js"])
    assert fetched == ["/v1/usage?"], "the script fetches the proxy's own usage API and nothing else"
    assert "?key=" not in texts["dashboard.js"] and "Bearer " in texts["dashboard.js"]


# ---- headless Chromium ----

def chromium(url: str, out: Path, *mode: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    assert binary, "chromium is not installed: run scripts/ensure-services.sh (make test does)"
    profile = out / f"profile-{len(list(out.iterdir()))}"
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}",
         f"--window-size={WIDTH},{HEIGHT}", "--virtual-time-budget=5000", "--enable-logging=stderr", "--v=0",
         *mode, url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def console_messages(stderr: str) -> list[str]:
    """What the page logged to the console, less Chromium's own "[DOM]" authoring hints."""
    lines = [line for line in stderr.splitlines() if ":CONSOLE" in line]
    return [line for line in lines if '"[DOM]' not in line]


class Dom(HTMLParser):
    """The text of every element with an id (``text``) or a data-metric (``text["metric:NAME"]``),
    the rows of every table by its id, and the body's attributes."""

    VOID = frozenset({"meta", "link", "input", "br", "img", "hr"})

    def __init__(self) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self.body: dict[str, str] = {}
        self.rows: dict[str, list[list[str]]] = {}
        self._open: list[tuple[str, list[str]]] = []
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_data(" ")  # elements' texts stay words apart
        values = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body = values
        if tag == "table":
            self._table = values.get("id")
            self.rows.setdefault(self._table or "", [])
        if tag == "tr" and self._table is not None:
            self.rows[self._table].append([])
        if tag in ("td", "th") and self._table is not None:
            self._cell = []
        if tag in self.VOID:
            return
        names = [f"metric:{v}" if k == "data-metric" else v for k, v in values.items() if k in ("id", "data-metric")]
        self._open.append((tag, names))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.rows[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        if tag == "table":
            self._table = None
        self.handle_data(" ")
        while self._open:
            open_tag, _ = self._open.pop()
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, names in self._open:
            for name in names:
                self.text[name] = self.text.get(name, "") + data
        if self._cell is not None:
            self._cell.append(data)


def rendered(proxy: ProxyServer, out: Path, fragment: str = "") -> tuple[Dom, list[str]]:
    result = chromium(f"{proxy.url}/dashboard{fragment}", out, "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    dom = Dom()
    dom.feed(result.stdout)
    return dom, console_messages(result.stderr)


def metric(dom: Dom, name: str) -> str:
    return " ".join(dom.text["metric:" + name].split())


def text(dom: Dom, element_id: str) -> str:
    return " ".join(dom.text.get(element_id, "").split())


def test_dashboard_renders_the_usage_in_headless_chromium(proxy: ProxyServer, tmp_path: Path) -> None:
    for fragment in ("", "#30d"):  # hourly buckets from records; daily ones from group_by=day
        dom, console = rendered(proxy, tmp_path, fragment)
        assert text(dom, "js-errors") == ""
        assert "data-js-errors" not in dom.body and console == []
        assert dom.body["data-state"] == "ready", text(dom, "message")
        assert metric(dom, "requests").startswith("Requests 6")
        assert metric(dom, "errors") == "Error rate 16.7% 1 error"
        models = {row[0]: row[1:] for row in dom.rows["by-model"][1:]}
        assert models["gpt-4o"][0] == "4" and models["gpt-4o-mini"][0] == "2", "the upstream's 400 counts for its route"
        assert models["gpt-4o"][4] == "1" and "(none)" not in models
        assert models["All"][0] == "6" and models["All"][4] == "1"
        backends = {row[0]: row[1:] for row in dom.rows["by-backend"][1:]}
        assert backends["alpha"][0] == "4" and backends["beta"][0] == "2"
        assert "Requests 6" in text(dom, "charts") and "Tokens 50" in text(dom, "charts")
        bucket = "(per hour, local time)" if not fragment else "(per day, UTC)"
        assert text(dom, "bucket") == bucket


def test_a_proxy_with_client_keys_asks_for_one(tmp_path: Path) -> None:
    (tmp_path / "proxy.yaml").write_text("clients:\n  - {name: ops, key_env_var: OPS_KEY, admin: true}\n")
    settings = Settings(config_dir=tmp_path, config_dir_required=True)
    with serve_proxy(tmp_path, environ={"OPS_KEY": "ops-dashboard-key-123456"}, settings=settings) as proxy:
        assert httpx.get(proxy.url + "/dashboard").status_code == 200, "the page itself needs no key"
        dom, console = rendered(proxy, tmp_path)
    assert dom.body["data-state"] == "auth"
    assert "needs a client key" in text(dom, "message") and "(401)" in text(dom, "message")
    assert text(dom, "js-errors") == ""
    assert console == []


# ---- the screenshot ----

def test_screenshot_is_the_drawn_page(proxy: ProxyServer, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    result = chromium(f"{proxy.url}/dashboard#7d", tmp_path, f"--screenshot={shot}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert console_messages(result.stderr) == []
    width, height, pixels = decode_png(shot.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    colours = set(pixels)
    assert len(colours) > 50, "the screenshot is (nearly) blank"
    for name, rgb in (("ok bars", (0x3B, 0x82, 0xC4)), ("error bars", (0xD6, 0x45, 0x45)),
                      ("input tokens", (0x5B, 0x8D, 0xEF)), ("output tokens", (0xF0, 0xA2, 0x3B)),
                      ("cost bars", (0x3A, 0xA6, 0x7A)), ("selected range", (0x2F, 0x6F, 0xDE))):  # fmt: skip
        assert rgb in colours, f"no {name} drawn (colour #{bytes(rgb).hex()})"


def decode_png(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Width, height and RGB pixels of an 8-bit RGB or RGBA, non-interlaced PNG (zlib only)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, bytearray(), b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, chunk = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
        elif kind == b"IEND":
            break
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(bytes(idat))
    previous = bytearray(stride)
    pixels: list[tuple[int, int, int]] = []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        unfilter(kind, line, previous, bpp)
        pixels.extend(zip(line[0::bpp], line[1::bpp], line[2::bpp], strict=True))
        previous = line
    return width, height, pixels


def unfilter(kind: int, line: bytearray, previous: bytearray, bpp: int) -> None:
    if kind == 0:
        return
    if kind == 2:  # Up
        line[:] = bytes((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        return
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        up = previous[i]
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + ((left + up) >> 1)) & 0xFF
        elif kind == 4:
            corner = previous[i - bpp] if i >= bpp else 0
            p = left + up - corner
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
            predictor = left if pa <= pb and pa <= pc else up if pb <= pc else corner
            line[i] = (line[i] + predictor) & 0xFF
        else:
            raise AssertionError(f"unknown PNG filter {kind}")
