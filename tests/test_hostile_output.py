"""Remote output is untrusted (issue 8): text a host controls cannot drive the terminal or break a report.

A hostile host controls its hostname, kernel release, os-release, sysctl names and values, socket
addresses, and the error text of what it could not read. Here all of them carry ANSI/OSC escapes, C1
controls, bidi overrides, NUL/CR/DEL, XML metacharacters and Markdown/HTML; the CLI audits them (from a
snapshot file, and from a real sshd whose ForceCommand prints the hostile collector output) and:

- the terminal table has no raw control character, and shows the hostile text escaped (visible, not lost);
- JSON round-trips every value exactly (json escapes the C0 controls);
- JUnit XML parses back (xml.etree and junitparser) with the escaped values in place;
- SARIF is valid against the official 2.1.0 schema (Draft4Validator) and holds no raw control character;
- Markdown carries no raw HTML, link, image, @-mention or extra table cell.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import junitparser
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sshd  # noqa: E402  (tests/sshd.py: real OpenSSH servers)

from tcpaudit.sanitize import clean_text  # noqa: E402
from tcpaudit.snapshot import (  # noqa: E402
    CollectionGap,
    Distro,
    Environment,
    KernelInfo,
    Snapshot,
    Socket,
    SocketTable,
    Source,
)

SARIF_SCHEMA = Path(__file__).resolve().parents[1] / "fixtures" / "schemas" / "sarif-schema-2.1.0.json"

ANSI = "\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b[31m"
C1 = "\x9b31m\x9d0;t\x9c"
BIDI = "\u202egnp.exe\u202c\u2066x\u2069\u200b"
XML = "<script>alert(1)</script>&amp;\"']]><![CDATA[x]]>"
MARKDOWN = (
    "**b** [click](https://evil.example) ![i](http://evil.example/i.png) <img src=x onerror=alert(1)> "
    "@admin `code` | cell | ~~s~~"
)
MISC = "\x00\x08\x7f\r\u2028\ufeff"
HOSTNAME = "web1" + ANSI + C1 + BIDI + XML + MARKDOWN + MISC + "\nfake-row"
RELEASE = "6.1.0" + ANSI + XML + C1
ADDRESS = "10.9.8.7" + ANSI + "<x>&" + BIDI  # up to 64 characters come through the ss parser as an address
KEEPALIVE = "7200" + ANSI + XML
SYSCTLS = {
    "net.ipv4.ip_local_port_range": "60000 60099",  # narrow: PORT001 names the hostile destination
    "net.ipv4.tcp_tw_reuse": "0",
    "net.ipv4.tcp_timestamps": "1",
    "net.ipv4.tcp_keepalive_time": KEEPALIVE,
    "net.core.somaxconn": "4096" + MARKDOWN,
    "net.ipv4.tcp_rfc1337": "1" + ANSI,
    "net.ipv4." + ANSI + XML: "1",
}
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")


def assert_clean(text: str, what: str) -> None:
    m = UNSAFE.search(text)
    assert m is None, f"{what}: raw {m.group()!r} in ...{text[max(0, m.start() - 60) : m.end() + 20]!r}"


def hostile_snapshot() -> Snapshot:
    n = 95  # of 100 usable ports held by TIME-WAIT sockets to one (hostile) destination
    rows = [
        Socket(4, "TIME-WAIT", "10.0.0.2", 60000 + i, ADDRESS, 443, 0, 0, "timewait", 30000, 0, 0, 0, None, None)
        for i in range(n)
    ]
    rows.append(Socket(4, "LISTEN", ADDRESS, 60050, "0.0.0.0", 0, 0, 0, None, None, None, 0, 1, None, None))
    return Snapshot(
        hostname=HOSTNAME,
        collected_at=_dt.datetime(2026, 1, 1, tzinfo=_dt.timezone.utc),
        source=Source.file,
        collector="tcpaudit" + ANSI,
        kernel=KernelInfo(release=RELEASE, version=None),
        distro=Distro(id="debian" + ANSI, pretty_name=MARKDOWN + ANSI),
        sysctls=SYSCTLS,
        sysctl_roots=["net.ipv4", "net.core"],
        sockets=SocketTable.from_rows(rows, source="ss"),
        environment=Environment(
            hints=["cloud=aws from dmi.sys_vendor=" + ANSI + XML], nat_rules=["-A PREROUTING -j REDIRECT " + ANSI]
        ),
        gaps=[CollectionGap(item="iptables-nat" + ANSI, reason="permission_denied", detail=XML + ANSI + MISC)],
    )


@pytest.fixture(scope="module")
def snapshot_file(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("hostile") / "hostile.json"
    path.write_text(hostile_snapshot().model_dump_json(indent=1), encoding="utf-8")
    return path


def tcpaudit(*args: str, columns: int = 1000) -> subprocess.CompletedProcess[str]:
    # a wide table (COLUMNS), so that a whole escaped name sits on one line for the substring checks; the
    # 80-column run of test_hostile_snapshot_table_is_clean checks the wrapped table is just as clean
    p = subprocess.run(
        [sys.executable, "-m", "tcpaudit", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=sshd.REPO,
        encoding="utf-8",
        env={**os.environ, "COLUMNS": str(columns)},
    )
    assert p.returncode in (0, 1), f"exit {p.returncode}: {p.stderr[-2000:]}"
    assert_clean(p.stderr, "stderr")
    return p


# ---- the checks per format -------------------------------------------------------------------------------
def check_table(text: str, hostname: str, release: str) -> None:
    assert_clean(text, "table")
    assert clean_text(hostname)[:60] in text  # the name is shown, escaped (visible, not dropped)
    assert clean_text(release)[:40] in text or clean_text(release, 80) in text


def check_json(text: str, hostname: str, release: str) -> dict:
    assert "\x1b" not in text and "\x00" not in text and "\x07" not in text  # json escapes every C0 control
    report = json.loads(text)
    (t,) = report["targets"]
    assert t["name"] == clean_text(hostname, 253)
    assert t["kernel"]["release"] == release  # the data itself round-trips exactly
    return report


def check_junit(text: str, hostname: str, release: str) -> None:
    assert_clean(text, "JUnit")
    root = ET.fromstring(text.split("\n", 1)[1])
    (suite,) = root.iter("testsuite")
    assert suite.get("name") == clean_text(hostname, 253)
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["kernel"] == clean_text(release, 300, keep_newlines=True)
    xml = junitparser.JUnitXml.fromstring(text)
    (jsuite,) = list(xml)
    assert jsuite.name == clean_text(hostname, 253)
    assert sum(1 for _ in jsuite) == int(suite.get("tests"))


def sarif_validator() -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text()))


def _strings(obj: object):  # type: ignore[no-untyped-def]
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def check_sarif(text: str, names: list[str]) -> None:
    doc = json.loads(text)
    errors = [f"{list(e.path)}: {e.message[:200]}" for e in sarif_validator().iter_errors(doc)]
    assert not errors, errors[:5]
    for s in _strings(doc):
        assert_clean(s.replace("\r", ""), "SARIF string")  # \r is a JSON escape here only if a host sent one
        assert "\r" not in s
    targets = doc["runs"][0]["properties"]["targets"]
    assert [t["name"] for t in targets] == [clean_text(n, 253) for n in names]


def check_markdown(text: str, hostname: str) -> None:
    assert_clean(text, "Markdown")
    tags = set(re.findall(r"</?[A-Za-z!][^ >]*", text))
    assert tags <= {"<details", "<summary", "</summary", "</details"}, tags
    bare = re.sub(r"\\.", "", text)  # what Markdown still interprets once backslash escapes are taken out
    for bad in ("](", "@admin", "`code`", "<script", "<img", "**b**", "~~s~~", "://evil"):
        assert bad not in bare, bad
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            assert len(re.findall(r"(?<!\\)\|", line)) == 7, line  # hostile pipes cannot add cells
    assert "web1" in text


# ---- from a snapshot file ----------------------------------------------------------------------------------
def test_hostile_snapshot_table_is_clean(snapshot_file: Path) -> None:
    for verbose in ([], ["-v"]):
        p = tcpaudit("audit", str(snapshot_file), "--format", "table", *verbose)
        check_table(p.stdout, HOSTNAME, RELEASE)
    assert clean_text(ADDRESS) in p.stdout  # the socket address, in PORT001's explanation (-v)
    assert clean_text(XML + ANSI + MISC) in p.stdout  # the host's own error text, in the gaps (-v)
    for verbose in ([], ["-v"]):
        assert_clean(tcpaudit("audit", str(snapshot_file), "--format", "table", *verbose, columns=80).stdout, "table")


def test_hostile_snapshot_json_round_trips(snapshot_file: Path) -> None:
    report = check_json(tcpaudit("audit", str(snapshot_file), "--format", "json").stdout, HOSTNAME, RELEASE)
    port001 = [f for f in report["targets"][0]["findings"] if f["rule"] == "PORT001"]
    assert port001 and port001[0]["evidence"]["destination"] == f"{ADDRESS}:443"  # exactly what the host said


def test_hostile_snapshot_junit_parses_back(snapshot_file: Path) -> None:
    check_junit(tcpaudit("audit", str(snapshot_file), "--format", "junit").stdout, HOSTNAME, RELEASE)


def test_hostile_snapshot_sarif_is_schema_valid_and_clean(snapshot_file: Path) -> None:
    check_sarif(tcpaudit("audit", str(snapshot_file), "--format", "sarif").stdout, [HOSTNAME])


def test_hostile_snapshot_markdown_has_no_injection(snapshot_file: Path) -> None:
    check_markdown(tcpaudit("audit", str(snapshot_file), "--format", "markdown").stdout, HOSTNAME)


def test_hostile_snapshot_keys_in_an_error_message_are_escaped(tmp_path: Path) -> None:
    """A snapshot the loader rejects: the error names the bad field, which the file itself chose."""
    bad = json.loads(hostile_snapshot().model_dump_json())
    bad["sockets"]["state_counts"] = {ANSI + "x": "not a number"}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    p = subprocess.run(
        [sys.executable, "-m", "tcpaudit", "audit", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=sshd.REPO,
    )
    assert p.returncode == 2, p.stderr
    assert_clean(p.stderr, "stderr")
    assert "\\x1b[2J" in p.stderr and len(p.stderr.strip().splitlines()) == 1


# ---- from a real sshd: the collector output itself is hostile ------------------------------------------------
needs_sshd = pytest.mark.skipif(not sshd.have_sshd(), reason="OpenSSH server (/usr/sbin/sshd) not installed")
USER = sshd.login_user()


def hostile_dump(base: bytes, hostname: str, release: str, sysctls: dict[str, str], ss_lines: list[str]) -> bytes:
    """The real collector output of this machine with the hostile host's answers put in."""
    out: list[str] = []
    item = None
    for line in base.decode("utf-8", "replace").split("\n"):
        if line.startswith("@@tcpaudit-begin "):
            item = line.split(" ", 1)[1]
            out.append(line)
            if item == "ss":
                out += ["|" + s for s in ss_lines]
            continue
        if line.startswith("@@tcpaudit-"):
            item = None
        elif item == "hostname" and line.startswith("|"):
            line = "|" + hostname
        elif item == "osrelease" and line.startswith("|"):
            line = "|" + release
        elif item == "os-release" and line.startswith("|PRETTY_NAME="):
            line = '|PRETTY_NAME="' + MARKDOWN + ANSI + '"'
        elif item == "sysctls" and line.startswith("|/proc/sys/"):
            path = line[1:].split(":", 1)[0]
            name = path[len("/proc/sys/") :].replace("/", ".")
            if name in sysctls:
                line = f"|{path}:{sysctls[name]}"
        out.append(line)
    return "\n".join(out).encode()


@pytest.fixture(scope="module")
def hostile_hosts(tmp_path_factory):  # type: ignore[no-untyped-def]
    """Three sshd hosts whose ForceCommand prints a hostile dump (no newline can be in a dump line)."""
    work = tmp_path_factory.mktemp("hostile-ssh")
    keys = sshd.make_keys(work)
    base = subprocess.run(["sh", "-s"], stdin=open(sshd.COLLECTOR, "rb"), capture_output=True, timeout=120).stdout
    name = HOSTNAME.replace("\n", " ")
    servers = []
    try:
        for i, keepalive in enumerate(["7200", "7200", KEEPALIVE]):
            dump = work / f"hostile{i}.dump"
            dump.write_bytes(
                hostile_dump(
                    base,
                    f"{name}-{i}",
                    RELEASE,
                    {"net.ipv4.tcp_keepalive_time": keepalive, "net.core.somaxconn": "4096" + MARKDOWN},
                    [f"ESTAB 0 0 10.0.0.2:5000 {ADDRESS}:443"],
                )
            )
            servers.append(sshd.SSHServer(work, keys, force_command=f"cat {dump}", name=f"hostile{i}").start())
        with open(keys.known_hosts, "a") as f:
            f.writelines(s.known_line() for s in servers)
        yield keys, servers, name
    finally:
        for s in servers:
            s.stop()


@needs_sshd
@pytest.mark.ssh
def test_remote_host_with_hostile_hostname_and_sysctls_gives_clean_table_and_valid_sarif_junit(hostile_hosts, tmp_path):
    """Acceptance: ANSI escapes and XML metacharacters in a remote hostname and sysctl values -> a clean
    terminal table, schema-valid SARIF and JUnit that parses back."""
    keys, servers, name = hostile_hosts
    s = servers[2]
    out = {fmt: tmp_path / f"report.{fmt}" for fmt in ("sarif", "junit", "json")}
    p = sshd.run_tcpaudit(
        [
            "host",
            f"{USER}@127.0.0.1:{s.port}",
            *sshd.ssh_args(keys, 60, 120),
            "-v",
            *(f"--format={fmt}:{path}" for fmt, path in out.items()),
            "--format",
            "table",
        ]
    )
    assert p.returncode in (0, 1), p.stderr.decode(errors="replace")
    table = p.stdout.decode()
    assert_clean(p.stderr.decode(), "stderr")
    check_table(table, f"127.0.0.1:{s.port}", RELEASE)  # the report names the host as the user did ...
    # the collector's output is cleaned when the snapshot is built, so the JSON holds the escaped release
    report = check_json(out["json"].read_text(), f"127.0.0.1:{s.port}", clean_text(RELEASE, 200))
    assert report["targets"][0]["sysctls"].get("net.ipv4.tcp_keepalive_time") == clean_text(KEEPALIVE, 300)
    check_sarif(out["sarif"].read_text(), [f"127.0.0.1:{s.port}"])
    check_junit(out["junit"].read_text(), f"127.0.0.1:{s.port}", RELEASE)


@needs_sshd
@pytest.mark.ssh
def test_fleet_table_with_hostile_hosts_is_clean(hostile_hosts, tmp_path):
    """The fleet view shows per-host reasons, kernels and sysctl drift: all of it host-controlled."""
    keys, servers, _name = hostile_hosts
    hosts = [f"{USER}@127.0.0.1:{s.port}" for s in servers]
    sarif = tmp_path / "fleet.sarif"
    junit = tmp_path / "fleet.xml"
    p = sshd.run_tcpaudit(
        ["fleet", *hosts, *sshd.ssh_args(keys, 60, 120), "-f", "table", "-f", f"sarif:{sarif}", "-f", f"junit:{junit}"],
        env={"COLUMNS": "1000"},  # one line per row for the substring checks
    )
    assert p.returncode in (0, 1), p.stderr.decode(errors="replace")
    table = p.stdout.decode()
    assert_clean(table, "fleet table")
    assert clean_text(RELEASE, 40)[:30] in table
    assert "net.ipv4.tcp_keepalive_time" in table and clean_text(KEEPALIVE, 30)[:25] in table  # drift, escaped
    check_sarif(sarif.read_text(), [f"127.0.0.1:{s.port}" for s in servers])
    ET.fromstring(junit.read_text().split("\n", 1)[1])
    assert len(list(junitparser.JUnitXml.fromfile(str(junit)))) == 3
