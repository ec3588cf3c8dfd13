"""The HTML report in a real browser: headless Chromium (Debian's `chromium`) with the network cut off loads the
page, runs its script, and the test reads the DOM it leaves (`--dump-dom`), its console and the requests it made
(a net log), and takes screenshots at desktop and laptop sizes.

The fleet test sweeps 13 real sshd hosts with `tcpaudit fleet` (as root, nine of them in network namespaces
with their own sysctls; four that cannot be audited: down, hung, a changed host key, junk output) and checks
the page against the JSON report of the same run. TCPAUDIT_UPDATE_SCREENSHOTS=1 copies its screenshots to
docs/screenshots/.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import html_page  # noqa: E402
import sshd  # noqa: E402
from test_html import XSS, hostile_report, lint_report, netns_report  # noqa: E402
from test_reporters import shared_report  # noqa: E402

from tcpaudit.model import Report  # noqa: E402
from tcpaudit.reporters import render  # noqa: E402

needs_chromium = pytest.mark.skipif(
    html_page.chromium() is None, reason="headless Chromium (Debian package chromium) not installed"
)
pytestmark = needs_chromium
DOCS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
UPDATE = os.environ.get("TCPAUDIT_UPDATE_SCREENSHOTS") == "1"
DESKTOP = (1440, 900)
LAPTOP = (1366, 768)


def _write(tmp_path: Path, report: Report, name: str = "report.html") -> Path:
    path = tmp_path / name
    path.write_text(render(report, "html"), encoding="utf-8")
    return path


def _clean(page: html_page.Page) -> None:
    assert page.console == [], page.console
    assert page.page_requests == [], page.page_requests
    (body,) = page.dom.find_all("body")
    assert body.attrs.get("data-ready") == "1", "the page's script did not run to its end"
    assert "data-json-error" not in body.attrs


def test_the_probe_sees_console_errors_and_requests(tmp_path: Path) -> None:
    """The checks below mean something: a page that logs, throws and fetches is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><title>t</title><img src='http://example.invalid/x.png'>"
        "<script>console.error('probe-error'); undefinedFunction();</script>"
    )
    page = html_page.load(bad, tmp_path / "chromium")
    assert any("probe-error" in m for m in page.console), page.stderr[-2000:]
    assert any("undefinedFunction" in m for m in page.console)
    assert page.page_requests == ["http://example.invalid/x.png"]


def test_shared_report_in_the_browser(tmp_path: Path) -> None:
    report = shared_report()
    page = html_page.load(_write(tmp_path, report), tmp_path / "chromium")
    _clean(page)
    dom = page.dom
    (body,) = dom.find_all("body")
    assert body.attrs["data-json-targets"] == str(len(report.targets))  # the embedded JSON parsed in the page
    rows = html_page.matrix_rows(dom)
    assert len(rows) == 3 and all(not r.attrs.get("hidden") for r in rows)
    assert "3 shown" in dom.by_id("f-count").text()


def test_hostile_page_runs_no_script(tmp_path: Path) -> None:
    report = hostile_report()
    path = _write(tmp_path, report)
    expected_title = html_page.parse(path.read_text()).find_all("head")[0].find_all("title")[0].text()
    page = html_page.load(path, tmp_path / "chromium")
    _clean(page)  # our script ran; the console shows no CSP violation, no error
    dom = page.dom
    title = dom.find_all("head")[0].find_all("title")[0]
    assert title.text() == expected_title and "pwned" not in title.text()
    (body,) = dom.find_all("body")
    assert "data-pwned" not in body.attrs
    assert body.attrs["data-json-targets"] == str(len(report.targets))
    tags = Counter(n.tag for n in dom.iter())
    assert tags["script"] == 2 and tags["svg"] == 3 and tags["style"] == 1
    assert not {"img", "iframe", "object", "embed", "base", "form"} & set(tags)
    for n in dom.iter():
        assert not [a for a in n.attrs if a.startswith("on")], (n.tag, n.attrs)
    rows = html_page.matrix_rows(dom)
    assert [r.attrs["data-name"] for r in rows][:2] == [XSS["img"], "ns-" + XSS["script"]]
    assert XSS["img"] in dom.by_id("matrix").text()


def test_netns_rows_in_the_browser_and_a_linked_filter(tmp_path: Path) -> None:
    path = _write(tmp_path, netns_report())
    page = html_page.load(path, tmp_path / "chromium")
    _clean(page)
    rows = html_page.matrix_rows(page.dom)
    assert [r.attrs.get("data-parent") for r in rows] == [None, "t0", "t0", "t0"]
    # a view linked by its URL: only namespaces where PORT002 fired; their host stays visible, dimmed
    filtered = html_page.load(path, tmp_path / "chromium", fragment="f:rule=PORT002")
    _clean(filtered)
    rows = html_page.matrix_rows(filtered.dom)
    shown = [r.attrs["data-name"] for r in rows if "hidden" not in r.attrs]
    assert shown == ["node1", "node1/kube-system/coredns"]
    assert "ctx" in rows[0].classes()


def test_lint_page_in_the_browser(tmp_path: Path) -> None:
    page = html_page.load(_write(tmp_path, lint_report()), tmp_path / "chromium")
    _clean(page)
    assert "rootfs/etc/sysctl.d/60-net.conf:3" in page.dom.text()


# ---- a real 13-host fleet ----------------------------------------------------------------------------------
USER = sshd.login_user()
CONNECT_T = 10.0
COMMAND_T = 60.0
# name -> (group, sysctls inside its namespace, expected status)
HEALTHY = {
    "web01": ("web", {}),
    "web02": ("web", {}),
    "web03": ("web", {"net.ipv4.tcp_timestamps": "0"}),
    "web04": ("web", {"net.ipv4.tcp_keepalive_time": "600"}),
    "db01": ("db", {}),
    "db02": ("db", {"net.ipv4.tcp_syncookies": "0"}),
    "db03": ("db", {"net.ipv4.tcp_sack": "0"}),
    "cache01": ("cache", {"net.ipv4.ip_local_port_range": "1024 65000"}),
    "cache02": ("cache", {"net.ipv4.ip_local_port_range": "1024 65000"}),
}
BROKEN = {"edge01": "unreachable", "edge02": "timeout", "edge03": "host_key_rejected", "edge04": "bad_output"}


@pytest.fixture(scope="module")
def fleet13(tmp_path_factory: pytest.TempPathFactory):
    """The report (JSON and HTML) of a real sweep of 13 hosts."""
    if not sshd.have_sshd():
        pytest.skip("OpenSSH server (/usr/sbin/sshd) not installed")
    work = tmp_path_factory.mktemp("fleet13")
    keys = sshd.make_keys(work)
    stop: list = []
    namespaces: list[sshd.NetNS] = []
    try:
        use_netns = sshd.have_netns()
        servers: dict[str, sshd.SSHServer] = {}
        for name, (_group, sysctls) in HEALTHY.items():
            if use_netns:
                ns = sshd.NetNS(sysctls=sysctls)
                namespaces.append(ns)
                servers[name] = sshd.SSHServer(work, keys, address=ns.address, port=22, netns=ns.name, name=name)
            else:
                servers[name] = sshd.SSHServer(work, keys, name=name)
        junk = sshd.write_script(work / "junk.sh", "#!/bin/sh\necho 'not a collector'\nexit 0\n")
        servers["edge03"] = sshd.SSHServer(work, keys, name="edge03")
        servers["edge04"] = sshd.SSHServer(work, keys, force_command=str(junk), name="edge04")
        for s in servers.values():
            s.start(wait=False)
            stop.append(s)
        for s in servers.values():
            s.wait_ready()
        other = sshd.keygen(work / "other_host_key")
        keys.known_hosts.write_text("".join(s.known_line(other if n == "edge03" else None) for n, s in servers.items()))
        silent = sshd.SilentServer()
        stop.append(silent)
        hostvars = {
            n: {"ansible_host": s.address, "ansible_port": s.port, "ansible_user": USER} for n, s in servers.items()
        }
        refused = sshd.RefusingPort()
        stop.append(refused)
        hostvars["edge01"] = {"ansible_host": "127.0.0.1", "ansible_port": refused.port, "ansible_user": USER}
        hostvars["edge02"] = {"ansible_host": "127.0.0.1", "ansible_port": silent.port, "ansible_user": USER}
        groups: dict[str, list[str]] = {}
        for name, (group, _s) in HEALTHY.items():
            groups.setdefault(group, []).append(name)
        groups["edge"] = list(BROKEN)
        inventory = {
            "_meta": {"hostvars": hostvars},
            "all": {"children": list(groups)},
            **{g: {"hosts": hs} for g, hs in groups.items()},
        }
        inv = work / "inventory.json"
        inv.write_text(json.dumps(inventory, indent=1))
        out_json, out_html = work / "fleet.json", work / "fleet.html"
        p = sshd.run_tcpaudit(
            [
                "fleet",
                "--inventory",
                str(inv),
                *sshd.ssh_args(keys, CONNECT_T, COMMAND_T),
                "--nat-idle-timeout",
                "240",
                "-f",
                f"json:{out_json}",
                "-f",
                f"html:{out_html}",
            ],
            timeout=180,
        )
        assert p.returncode == 3, p.stderr
        order = [h for hs in groups.values() for h in hs]
        yield {"json": json.loads(out_json.read_text()), "html": out_html, "order": order, "netns": use_netns}
    finally:
        for s in stop:
            s.stop()
        for ns in namespaces:
            ns.delete()


@pytest.mark.ssh
@pytest.mark.root
def test_fleet_report_in_the_browser(fleet13, tmp_path: Path) -> None:
    report = fleet13["json"]
    statuses = {t["name"]: t["status"] for t in report["targets"]}
    assert statuses == {**{n: "ok" for n in HEALTHY}, **BROKEN}, {t["name"]: t["error"] for t in report["targets"]}

    page = html_page.load(fleet13["html"], tmp_path / "chromium")
    _clean(page)
    dom = page.dom
    rows = html_page.matrix_rows(dom)
    names = [r.attrs["data-name"] for r in rows]
    assert names == fleet13["order"]  # every host of the inventory, once, in inventory order
    assert all(n == 1 for n in Counter(names).values()) and len(names) == 13
    for t, row in zip(report["targets"], rows, strict=True):
        active = sorted({f["rule"] for f in t["findings"] if f["suppressed"] is None})
        assert row.attrs["data-status"] == t["status"]
        assert row.attrs["data-rules"].split() == active, t["name"]
        assert row.attrs["data-group"] == report["extra"]["fleet"]["groups"][t["name"]]
        worst = max((f["severity"] for f in t["findings"] if f["suppressed"] is None), default=None, key=_rank)
        sev_cells = {c.attrs["class"].split()[1] for c in row.find_all("span") if "cell" in c.classes()} - {
            "pass",
            "na",
            "none",
            "unk",
            "sup",
            "err",
        }
        if worst:
            assert f"sev-{worst}" in sev_cells, (t["name"], sev_cells)
    # the hosts that could not be audited, each with its reason
    un = dom.by_id("unaudited")
    assert un is not None
    un_rows = [tr for tr in un.find_all("tr") if "data-name" in tr.attrs]
    assert {tr.attrs["data-name"] for tr in un_rows} == set(BROKEN)
    for tr in un_rows:
        reason = tr.find_all("td", class_="reason")[0].text().strip()
        assert BROKEN[tr.attrs["data-name"]] in tr.text() and reason, tr.text()
    # every rule that fired has its section with the mechanism
    fired = set(report["summary"]["by_rule"])
    sections = {a.attrs["id"].removeprefix("rule-"): a for a in dom.find_all("article")}
    assert fired <= set(sections)
    for rule in fired:
        assert "Why it fails" in sections[rule].text()
    if fleet13["netns"]:
        assert "TCP002" in fired and "TCP012" in fired and "TCP007" in fired
        drift = dom.by_id("drift")
        assert drift is not None and "net.ipv4.tcp_keepalive_time" in drift.text() and "web04" in drift.text()
    timeline = dom.by_id("timeline")
    assert timeline is not None
    if report["extra"]["fleet"].get("timeline"):
        assert timeline.find_all("svg")
    else:
        assert "No timing recorded" in timeline.text()

    # linked views: the hosts that could not be audited; the hosts with most findings first
    unaudited = html_page.load(fleet13["html"], tmp_path / "chromium", fragment="f:status=unaudited")
    _clean(unaudited)
    shown = [r.attrs["data-name"] for r in html_page.matrix_rows(unaudited.dom) if "hidden" not in r.attrs]
    assert shown == list(BROKEN)
    by_findings = html_page.load(fleet13["html"], tmp_path / "chromium", fragment="f:sort=findings&dir=desc")
    _clean(by_findings)
    counts = [int(r.attrs["data-findings"]) for r in html_page.matrix_rows(by_findings.dom)]
    assert counts[:9] == sorted(counts[:9], reverse=True)

    # screenshots at desktop and laptop sizes
    for label, (w, h) in (("desktop", DESKTOP), ("laptop", LAPTOP)):
        png = tmp_path / f"fleet-{label}.png"
        console = html_page.screenshot(fleet13["html"], png, w, h, tmp_path / "chromium")
        assert console == []
        assert html_page.png_size(png) == (w, h)
        assert png.stat().st_size > 20_000  # a rendered page, not a blank one
        if UPDATE and fleet13["netns"]:
            DOCS.mkdir(parents=True, exist_ok=True)
            shutil.copy(png, DOCS / png.name)
    if UPDATE and fleet13["netns"]:
        png = tmp_path / "fleet-rules.png"
        html_page.screenshot_of(fleet13["html"], png, *DESKTOP, "rules", tmp_path / "chromium")
        assert html_page.png_size(png) == DESKTOP
        shutil.copy(png, DOCS / png.name)


def _rank(sev: str) -> int:
    return ["info", "low", "medium", "high", "critical"].index(sev)
