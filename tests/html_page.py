"""Helpers for the HTML report tests: a small DOM built with the standard library's parser, and headless
Chromium (Debian's `chromium` package) with the network cut off.

Not a conftest: import it explicitly (`import html_page`). Chromium runs with its own throw-away profile,
`--no-sandbox` (tests run as root, where Chromium's sandbox refuses to start), every request sent to a proxy
on 127.0.0.1:9 (the discard port: nothing answers) and every host name unresolvable, and it writes a net log:
`Page.page_requests` lists every request the page itself started, which must be none.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    parent: Node | None = None
    children: list[Node | str] = field(default_factory=list)

    def iter(self) -> Iterator[Node]:
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter()

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        want = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        return [
            n
            for n in self.iter()
            if (tag is None or n.tag == tag) and all(n.attrs.get(k) == v for k, v in want.items())
        ]

    def by_id(self, id_: str) -> Node | None:
        found = self.find_all(id=id_)
        return found[0] if found else None

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.cur = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.cur.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.cur))

    def handle_endtag(self, tag: str) -> None:
        n: Node | None = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data: str) -> None:
        self.cur.children.append(data)


def parse(html: str) -> Node:
    b = _Builder()
    b.feed(html)
    b.close()
    return b.root


def matrix_rows(dom: Node) -> list[Node]:
    table = dom.by_id("mx")
    assert table is not None, "no matrix table"
    return [tr for tr in table.find_all("tr") if "data-name" in tr.attrs]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:32]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    w, h = struct.unpack(">II", data[16:24])
    return w, h


# ---- Chromium ---------------------------------------------------------------------------------------------
def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


_CONSOLE = re.compile(r":CONSOLE(?:\(\d+\)|:\d+)?\]\s*(.*)")


@dataclass
class Page:
    dom_html: str
    console: list[str]  # every console message and uncaught error of the page
    page_requests: list[str]  # URLs of requests the page started (background requests of Chromium excluded)
    stderr: str

    @property
    def dom(self) -> Node:
        return parse(self.dom_html)


def _flags(workdir: Path) -> list[str]:
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-sync",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-domain-reliability",
        "--disable-breakpad",
        "--hide-scrollbars",
        "--proxy-server=127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={workdir / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _page_requests(netlog: Path) -> list[str]:
    """Requests in Chromium's net log that a page initiated. Chromium's own background requests (component
    updates, time sync) carry the initiator 'not an origin'; anything a page asks for has the page's origin
    ('null' for a file:// page)."""
    if not netlog.exists():
        return ["<no net log written>"]
    text = netlog.read_text(errors="replace").rstrip().rstrip(",")
    if not text.endswith("}"):  # a log cut at exit: close it
        text = text.rstrip(",\n") + "]}"
    data = json.loads(text)
    types = {v: k for k, v in data["constants"]["logEventTypes"].items()}
    out = []
    for e in data.get("events", []):
        p = e.get("params") or {}
        if types.get(e.get("type")) == "URL_REQUEST_START_JOB" and "url" in p:
            if p.get("initiator") != "not an origin" and not str(p["url"]).startswith("file:"):
                out.append(str(p["url"]))
    return out


def _url(page: Path, fragment: str | None) -> str:
    return page.resolve().as_uri() + (f"#{fragment}" if fragment else "")


def load(page: Path, workdir: Path, timeout: float = 90, fragment: str | None = None) -> Page:
    """Open page (a file, optionally at #fragment) and return the DOM after its scripts ran, its console and the
    requests it made."""
    exe = chromium()
    assert exe, "chromium not installed"
    workdir.mkdir(parents=True, exist_ok=True)
    netlog = workdir / "netlog.json"
    netlog.unlink(missing_ok=True)
    p = _run(
        [exe, *_flags(workdir), f"--log-net-log={netlog}", "--dump-dom", _url(page, fragment)],
        timeout,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    console = [m.group(1) for line in p.stderr.splitlines() if (m := _CONSOLE.search(line))]
    return Page(p.stdout, console, _page_requests(netlog), p.stderr)


def screenshot(
    page: Path, out: Path, width: int, height: int, workdir: Path, timeout: float = 90, fragment: str | None = None
) -> list[str]:
    """A PNG of the first width x height pixels of the page; returns the console messages."""
    exe = chromium()
    assert exe, "chromium not installed"
    workdir.mkdir(parents=True, exist_ok=True)
    p = _run(
        [
            exe,
            *_flags(workdir),
            f"--window-size={width},{height}",
            f"--screenshot={out}",
            _url(page, fragment),
        ],
        timeout,
    )
    assert p.returncode == 0 and out.exists(), p.stderr[-3000:]
    return [m.group(1) for line in p.stderr.splitlines() if (m := _CONSOLE.search(line))]


def screenshot_of(
    page: Path, out: Path, width: int, height: int, element_id: str, workdir: Path, timeout: float = 90
) -> None:
    """A width x height PNG starting at the element with that id, through the DevTools protocol over
    --remote-debugging-pipe (plain `--screenshot` of a page scrolled to a #fragment comes out blank)."""
    exe = chromium()
    assert exe, "chromium not installed"
    workdir.mkdir(parents=True, exist_ok=True)
    # the pipe is the child's fds 3 (commands in) and 4 (replies out): map them from its stdin and stdout
    proc = subprocess.Popen(
        [
            "sh",
            "-c",
            'exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>/dev/null',
            exe,
            *[f for f in _flags(workdir) if not f.startswith(("--enable-logging", "--v="))],
            "--remote-debugging-pipe",
            f"--window-size={width},{height}",
            "about:blank",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    buf = b""
    counter = 0

    def call(method: str, params: dict[str, object] | None = None, session: str | None = None) -> dict:
        nonlocal counter
        counter += 1
        msg: dict[str, object] = {"id": counter, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(msg).encode() + b"\0")
        proc.stdin.flush()
        want = counter
        return wait(lambda m: m.get("id") == want)

    def wait(pred) -> dict:
        nonlocal buf
        while True:
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                m = json.loads(raw)
                if "error" in m:
                    raise RuntimeError(f"DevTools: {m['error']}")
                if pred(m):
                    return m
            assert proc.stdout is not None
            chunk = os.read(proc.stdout.fileno(), 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            buf += chunk

    try:
        targets = call("Target.getTargets")["result"]["targetInfos"]
        target = next(t["targetId"] for t in targets if t["type"] == "page")
        session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["result"]["sessionId"]
        call("Page.enable", session=session)
        call("Page.navigate", {"url": _url(page, None)}, session)
        wait(lambda m: m.get("method") == "Page.loadEventFired")
        expr = f"document.getElementById({json.dumps(element_id)}).getBoundingClientRect().top + window.scrollY"
        top = call("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session)["result"]["result"]
        clip = {"x": 0, "y": max(0, float(top["value"]) - 8), "width": width, "height": height, "scale": 1}
        shot = call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}, session)
        out.write_bytes(base64.b64decode(shot["result"]["data"]))
        call("Browser.close")
        proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
