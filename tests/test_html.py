"""The HTML reporter without a browser: structure of the page for host, fleet, lint and netns reports, the
embedded JSON, the content security policy, and hostile text (tests/test_html_browser.py loads the same pages
in headless Chromium)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import html_page  # noqa: E402  (tests/html_page.py)
from test_reporters import HOSTILE, shared_report  # noqa: E402

from tcpaudit.audit import build_report, failed_target  # noqa: E402
from tcpaudit.catalogue import metas  # noqa: E402
from tcpaudit.model import (  # noqa: E402
    Finding,
    KernelRef,
    NetnsInfo,
    Report,
    Severity,
    Target,
    TargetStatus,
)
from tcpaudit.reporters import render  # noqa: E402
from tcpaudit.reporters.html import build_view, script_json  # noqa: E402
from tcpaudit.sanitize import clean_text  # noqa: E402

# Payloads that would run script or load something if any of them reached the page as markup.
XSS = {
    "img": '"><img src=x onerror="document.title=\'pwned-img\'">',
    "script": "</script><script>document.body.setAttribute('data-pwned','script')</script>",
    "svg": "<svg onload=\"document.body.setAttribute('data-pwned','svg')\">",
    "comment": "<!--<script>document.title='pwned-comment'</script>-->",
    "style": "</style><script>document.title='pwned-style'</script>",
    "iframe": "<iframe src=\"javascript:document.title='pwned-iframe'\"></iframe>",
    "attr": "' onmouseover='document.title=1' x='",
    "js_url": "javascript:document.title='pwned-href'",
    "cdata": "]]><script>document.title='pwned-cdata'</script>",
    "separators": "a\u2028b\u2029c</script>",
}


def _finding(rule: str, sev: Severity, **kw: object) -> Finding:
    return Finding(rule=rule, severity=sev, title=f"{rule} title", **kw)  # type: ignore[arg-type]


def hostile_report() -> Report:
    """Every place remote or user text reaches the page, each with a payload."""
    targets = [
        Target(
            name=XSS["img"],
            kind="host",
            kernel=KernelRef(release=XSS["separators"]),
            sysctls={"net.ipv4.tcp_keepalive_time": XSS["script"]},
            context=[XSS["comment"]],
            gaps=[XSS["style"]],
            findings=[
                _finding(
                    "NAT001",
                    Severity.medium,
                    explanation=XSS["svg"],
                    evidence={"hostname": XSS["script"], "nested": {"v": XSS["comment"]}, "url": XSS["js_url"]},
                    fix={"net.ipv4.tcp_keepalive_time": XSS["attr"]},
                    references=[XSS["js_url"], "data:text/html,<script>alert(1)</script>"],
                    context=[XSS["cdata"]],
                ),
                _finding(XSS["img"][:30], Severity.high, explanation=XSS["iframe"], references=[XSS["js_url"]]),
            ],
        ),
        Target(
            name="ns-" + XSS["script"],
            kind="netns",
            netns=NetnsInfo(
                inode=4026532000,
                pids=[42],
                name=XSS["style"],
                name_source="comm",
                pod=XSS["svg"],
                container_id=XSS["attr"],
                bind_mounts=[XSS["comment"]],
            ),
            findings=[_finding("TCP002", Severity.medium, explanation=XSS["cdata"])],
        ),
        failed_target("down-" + XSS["svg"], TargetStatus.unreachable, XSS["iframe"]),
        Target(name=XSS["cdata"], kind="host", status=TargetStatus.bad_output, error=XSS["script"]),
        Target(name="web3", kind="host"),
    ]
    report = build_report(targets, "high")
    names = [t.name for t in targets]
    report.extra["fleet"] = {
        "hosts": len(targets),
        "statuses": {XSS["img"]: 1},
        "groups": {names[0]: XSS["attr"], names[2]: XSS["attr"], names[3]: XSS["attr"], "web3": XSS["attr"]},
        "drift": [
            {
                "key": XSS["comment"],
                "group": XSS["attr"],
                "majority": XSS["script"],
                "majority_hosts": 2,
                "hosts": {names[0]: XSS["style"]},
            }
        ],
        "timeline": {names[0]: {"start_s": 0.0, "connect_s": 0.2, "collect_s": 0.5, "audit_s": 0.01}},
        "elapsed_s": 0.8,
    }
    return report


def netns_report() -> Report:
    def ns(name: str, inode: int, pod: str | None = None, is_host: bool = False) -> NetnsInfo:
        return NetnsInfo(
            inode=inode,
            pids=[1] if is_host else [inode % 1000],
            name=name,
            name_source="host" if is_host else "pod-log-dir",
            pod=pod,
            is_host=is_host,
        )

    targets = [
        Target(
            name="node1",
            kind="host",
            netns=ns("host", 4026531840, is_host=True),
            findings=[_finding("NAT001", Severity.medium)],
        ),
        Target(
            name="node1/kube-system/coredns",
            kind="netns",
            netns=ns("coredns", 4026532001, pod="kube-system/coredns"),
            findings=[_finding("NAT001", Severity.medium), _finding("PORT002", Severity.medium)],
        ),
        Target(
            name="node1/default/api",
            kind="netns",
            status=TargetStatus.partial,
            error="counters only: setns needs CAP_SYS_ADMIN",
            netns=ns("api", 4026532002, pod="default/api"),
        ),
        Target(
            name="node1/gone",
            kind="netns",
            status=TargetStatus.skipped,
            error="gone: the namespace's last process exited before it was entered",
            netns=ns("gone", 4026532003),
        ),
    ]
    return build_report(targets, "high")


def lint_report() -> Report:
    return Report.model_validate({**shared_report().model_dump(), "targets": [shared_report().targets[0]]})


@pytest.fixture(scope="module")
def catalogue_metas():
    return metas()


def _page(report: Report) -> tuple[str, html_page.Node]:
    text = render(report, "html")
    return text, html_page.parse(text)


def _embedded(text: str) -> object:
    m = re.search(r'<script type="application/json" id="tcpaudit-report">(.*?)</script>', text, re.S)
    assert m, "no embedded JSON"
    return json.loads(m.group(1))


# ---- structure -------------------------------------------------------------------------------------------
def test_shared_report_page_structure() -> None:
    report = shared_report()
    text, dom = _page(report)
    assert text.startswith("<!DOCTYPE html>")
    rows = html_page.matrix_rows(dom)
    assert [r.attrs["data-name"] for r in rows] == [clean_text(t.name, 253) for t in report.targets]
    by_name = {r.attrs["data-name"]: r for r in rows}
    assert by_name["db-2"].attrs["data-audited"] == "0" and by_name["db-2"].attrs["data-status"] == "unreachable"
    assert "Connection refused" in by_name["db-2"].text()
    rootfs = by_name["rootfs"]
    cells = {c.attrs.get("class") for c in rootfs.find_all("span") if "cell" in c.classes()}
    # the config target: an active high, a suppressed critical (waiver), a crashed rule and an info
    assert {"cell sev-high", "cell sup", "cell err", "cell sev-info"} <= cells
    host = rows[1]
    host_cells = {c.attrs["class"] for c in host.find_all("span") if "cell" in c.classes()}
    assert {"cell sev-critical", "cell sev-medium", "cell unk"} <= host_cells
    # summary numbers
    summary = dom.by_id("summary")
    assert summary is not None and "6" in summary.text() and "3 suppressed" in summary.text()
    # not audited, with the reason
    un = dom.by_id("unaudited")
    assert un is not None and "db-2" in un.text() and "unreachable" in un.text() and "Connection refused" in un.text()
    # one section per rule that fired, with the catalogue's mechanism for known rules
    sections = {a.attrs["id"]: a for a in dom.find_all("article")}
    assert {"rule-TCP001", "rule-SYS001", "rule-NAT001", "rule-PORT999"} <= set(sections)
    tcp001 = sections["rule-TCP001"]
    assert tcp001.find_all("ol") and "Why it fails" in tcp001.text()
    assert "net.ipv4.tcp_tw_recycle = 0" in tcp001.text()  # the fix per host
    assert "waiver: el7 image, retired in Q3" in tcp001.text()
    assert "not in this tcpaudit's catalogue" in sections["rule-PORT999"].text()
    assert "rootfs/etc/sysctl.d/60-net.conf:3" in sections["rule-SYS001"].text()  # lint locations
    # plots
    assert len(dom.find_all("svg")) == 2  # findings by rule, targets by status; no timeline outside a fleet
    assert _embedded(text) == report.model_dump(mode="json")


def test_findings_by_rule_and_status_plots(catalogue_metas) -> None:
    view = build_view(shared_report(), catalogue_metas)
    bars, _, top = view["rule_bars"]
    assert [(b.label, b.note) for b in bars][:2] == [("TCP001", "1/2"), ("SYS001", "1/2")]
    assert top == 1
    sbars, _, _ = view["status_bars"]
    assert [(b.label, b.value) for b in sbars] == [("ok", 2), ("unreachable", 1)]


def test_fleet_page_timeline_drift_and_groups() -> None:
    report = hostile_report()
    text, dom = _page(report)
    tl = dom.by_id("timeline")
    assert tl is not None and tl.find_all("svg") and not tl.find_all("p", class_="empty")
    assert {r.attrs["class"] for r in tl.find_all("rect")} == {"ph-connect", "ph-collect", "ph-audit"}
    assert dom.by_id("drift") is not None and dom.by_id("f-group") is not None
    del report.extra["fleet"]["timeline"]
    _, dom = _page(report)
    tl = dom.by_id("timeline")
    assert tl is not None and not tl.find_all("svg") and "No timing recorded" in tl.text()


def test_timeline_with_many_hosts_stays_bounded() -> None:
    targets = [Target(name=f"h{i:04d}", kind="host") for i in range(1000)]
    report = build_report(targets)
    report.extra["fleet"] = {
        "hosts": 1000,
        "timeline": {
            f"h{i:04d}": {"start_s": i * 0.01, "connect_s": 0.3, "collect_s": 0.6, "audit_s": 0.02} for i in range(1000)
        },
    }
    view = build_view(report, [])
    tl = view["timeline"]
    assert tl["n"] == 1000 and tl["height"] <= 1000 and not tl["labels"]
    assert [s["phase"] for s in tl["stats"]] == ["connect", "collect", "audit"]
    assert tl["stats"][0]["median"] == pytest.approx(0.3)


def test_timeline_tolerates_missing_and_bad_values() -> None:
    report = build_report([Target(name="a", kind="host"), Target(name="b", kind="host")])
    report.extra["fleet"] = {
        "timeline": {"a": {"start_s": "x", "connect_s": None, "collect_s": float("nan")}, "b": "junk", "c": {}},
    }
    text, dom = _page(report)
    tl = dom.by_id("timeline")
    assert tl is not None and len(tl.find_all("rect")) == 0 and "NaN" not in text
    assert _embedded(text)["extra"]["fleet"]["timeline"]["a"]["collect_s"] is None  # type: ignore[index]


def test_netns_rows_are_grouped_under_their_host() -> None:
    text, dom = _page(netns_report())
    rows = html_page.matrix_rows(dom)
    assert [r.attrs.get("data-parent") for r in rows] == [None, "t0", "t0", "t0"]
    assert [r.attrs["class"].split()[0] for r in rows] == ["head", "child", "child", "child"]
    assert "pod kube-system/coredns" in rows[1].text() and "netns 4026532001" in rows[1].text()
    assert rows[2].attrs["data-status"] == "partial" and rows[2].attrs["data-audited"] == "1"
    assert rows[3].attrs["data-audited"] == "0"
    un = dom.by_id("unaudited")
    assert un is not None and "gone: the namespace" in un.text() and "counters only" in un.text()
    assert dom.find_all("body")[0].attrs["data-kind"] == "netns"


def test_lint_page_shows_locations() -> None:
    text, dom = _page(lint_report())
    assert dom.find_all("body")[0].attrs["data-kind"] == "lint"
    assert "rootfs/etc/sysctl.d/60-net.conf:3" in dom.text()
    assert dom.by_id("drift") is None and dom.by_id("timeline") is None


def test_a_clean_host_says_so() -> None:
    text, dom = _page(build_report([Target(name="web1", kind="host")]))
    assert "No rule fired" in dom.text() and dom.by_id("unaudited") is None
    assert dom.find_all("title")[0].text().startswith("tcpaudit host report: 1 target, 0 findings")


# ---- self-contained and escaped ---------------------------------------------------------------------------
def test_page_is_self_contained_with_a_strict_policy() -> None:
    text, dom = _page(hostile_report())
    (meta,) = dom.find_all("meta", http_equiv="Content-Security-Policy")
    csp = meta.attrs["content"]
    assert csp.startswith("default-src 'none';") and "unsafe-inline" not in csp and "base-uri 'none'" in csp
    scripts = dom.find_all("script")
    assert [s.attrs.get("type") for s in scripts] == ["application/json", None]
    (style,) = dom.find_all("style")
    for body, directive in ((scripts[1].text(), "script-src"), (style.text(), "style-src")):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}'" in csp
    assert not dom.find_all("link") and not dom.find_all("img") and not dom.find_all("iframe")
    assert "@import" not in style.text() and "url(" not in style.text()
    assert not [n for n in dom.iter() if "src" in n.attrs or "srcset" in n.attrs]


def test_hostile_text_stays_text() -> None:
    report = hostile_report()
    text, dom = _page(report)
    tags = {n.tag for n in dom.iter()}
    assert not tags & {"img", "iframe", "object", "embed", "base", "form"}, tags
    assert len(dom.find_all("script")) == 2 and len(dom.find_all("style")) == 1
    assert len(dom.find_all("svg")) == 3  # the three plots, none from the payload
    for n in dom.iter():
        assert not [a for a in n.attrs if a.startswith("on")], (n.tag, n.attrs)
        href = n.attrs.get("href")
        if href is not None:
            assert href.startswith("#") or href.startswith("https://"), href
    assert "javascript:" not in " ".join(n.attrs.get("href", "") for n in dom.iter())
    # the payloads are there, as text
    page_text = dom.by_id("matrix").text()
    assert XSS["img"] in page_text and "ns-" + XSS["script"] in page_text
    assert XSS["iframe"] in dom.by_id("unaudited").text()
    assert XSS["style"] in dom.by_id("drift").text()
    assert XSS["js_url"] in dom.by_id("rules").text()
    # the JSON cannot end its element and round-trips exactly
    m = re.search(r'id="tcpaudit-report">(.*?)</script>', text, re.S)
    assert m and "<" not in m.group(1) and ">" not in m.group(1) and "\u2028" not in m.group(1)
    assert json.loads(m.group(1)) == report.model_dump(mode="json")
    assert "\u2028" not in text and "\u2029" not in text and "\x00" not in text


@pytest.mark.parametrize("payload", list(XSS.values()))
def test_script_json_cannot_break_out(payload: str) -> None:
    out = script_json({"k": payload, payload: [payload]})
    assert "</" not in out and "<!--" not in out and "]]>" not in out and "<" not in out
    assert json.loads(out) == {"k": payload, payload: [payload]}


def test_hostile_name_in_the_golden_report_is_escaped() -> None:
    text = render(shared_report(), "html")
    assert "\x1b" not in text and "\u202e" not in text
    assert "<b>&amp;</b>" not in text and "&lt;b&gt;&amp;amp;&lt;/b&gt;" in text
    assert HOSTILE not in text


def test_cli_writes_html(tmp_path: Path) -> None:
    import subprocess

    snap = next(Path(__file__).resolve().parents[1].glob("fixtures/snapshots/*.json"), None)
    if snap is None:
        pytest.skip("no snapshot fixture")
    out = tmp_path / "r.html"
    p = subprocess.run(
        [sys.executable, "-m", "tcpaudit", "audit", str(snap), "-f", f"html:{out}", "-f", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode in (0, 1, 3), p.stderr
    dom = html_page.parse(out.read_text())
    assert len(html_page.matrix_rows(dom)) == len(json.loads(p.stdout)["targets"])
