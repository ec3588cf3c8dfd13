"""Distribution kernels judged as the upstream stable point release their build states (issue 17, item 6).

Cases are data: fixtures/kernel/version_strings.yaml holds real `uname -r` / `uname -v` / /proc/version /
/proc/version_signature strings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tcpaudit.kernel.db import load_kernel_db
from tcpaudit.kernel.release import parse_host_release, parse_release
from tcpaudit.kernel.summary import kernel_summary

from .cli import ROOT, run

CASES = yaml.safe_load((ROOT / "fixtures" / "kernel" / "version_strings.yaml").read_text())["cases"]
CHALLENGE = "KI-CT-CHALLENGE-ACK-RST"  # fixed in mainline 6.2 and in stable 6.1.9 (kernel_db/issues.toml)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_real_version_strings(case: dict) -> None:
    rel = parse_host_release(case["release"], case.get("version"), case.get("signature"))
    assert rel.upstream == case["upstream"]
    assert rel.raw == case["release"]
    if "flavour" in case:
        assert rel.flavour == case["flavour"]
    if "from" in case:
        assert rel.point_source == case["from"]


def test_debian_point_release_counts_the_stable_fix() -> None:
    """6.1.0-18-amd64 alone is a 6.1 base whose backports are unknown; with its `uname -v` it is 6.1.76, which
    is after stable 6.1.9 that carries the fix."""
    db = load_kernel_db()
    bare = {i.id: i for i in db.issues_for(parse_release("6.1.0-18-amd64"))}
    judged = {i.id: i for i in db.issues_for(parse_host_release("6.1.0-18-amd64", CASES[0]["version"]))}
    assert bare[CHALLENGE].applies is None
    assert judged[CHALLENGE].applies is False
    assert "stable 6.1.9 carries the fix" in judged[CHALLENGE].reason
    assert "judged as upstream 6.1.76" in judged[CHALLENGE].reason
    assert judged[CHALLENGE].confidence == "medium"  # the distribution's own patches are not known


def test_this_machines_proc_version_parses() -> None:
    release = Path("/proc/sys/kernel/osrelease").read_text().strip()
    proc_version = Path("/proc/version").read_text()
    sig = Path("/proc/version_signature")
    rel = parse_host_release(release, proc_version, sig.read_text() if sig.exists() else None)
    assert rel.raw == release
    assert rel.version[:2] == parse_release(release).version[:2]
    assert rel.version >= parse_release(release).version


def test_kernel_command_judges_a_debian_build(tmp_path: Path) -> None:
    p = run("kernel", "6.1.0-18-amd64", "--version-string", CASES[0]["version"], "--format", "json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["version"] == "6.1.76" and doc["version_from"] == "uname -v: Debian 6.1.76"
    issue = next(i for i in doc["issues"] if i["id"] == CHALLENGE)
    assert issue["verdict"] == "not affected" and issue["confidence"] and issue["reason"]


def test_kernel_command_without_release_reads_this_machine() -> None:
    p = run("kernel", "--format", "json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["release"] == Path("/proc/sys/kernel/osrelease").read_text().strip()


@pytest.mark.parametrize("columns", [60, 80, 160])
@pytest.mark.parametrize("release", ["4.18.0-513.el8.x86_64", "6.1.0-18-amd64", "5.4.0-137-generic"])
@pytest.mark.parametrize("verbose", [[], ["-v"]])
def test_kernel_table_fits_and_agrees_with_itself(columns: int, release: str, verbose: list[str]) -> None:
    p = run("kernel", release, *verbose, env={"COLUMNS": str(columns)})
    assert p.returncode == 0, p.stderr
    assert max(len(line) for line in p.stdout.splitlines()) <= columns
    doc = json.loads(run("kernel", release, "--format", "json").stdout)
    # no contradiction: a sysctl a known issue is about is unknown in the table when that issue is unknown
    for info in doc["sysctls"].values():
        for iid in info["unknown_because"]:
            assert next(i for i in doc["issues"] if i["id"] == iid)["applies"] is None
    for issue in doc["issues"]:
        if issue["applies"] is None:
            for name in issue["sysctls"]:
                assert issue["id"] in doc["sysctls"][name]["unknown_because"]
    somaxconn = doc["sysctls"]["net.core.somaxconn"]
    rows = [ln for ln in p.stdout.splitlines() if ln.startswith(("net.core.somaxconn ", "net.core.somaxconn:"))]
    if somaxconn["unknown_because"]:
        assert rows and "? (base: 128)" in rows[0]
    assert "kernel_db/README.md" not in p.stdout  # the legend points to what an installed package has
    assert "tcpaudit explain KI-" in " ".join(p.stdout.split())


def test_rhel8_somaxconn_default_is_not_claimed_when_the_issue_is_unknown() -> None:
    s = kernel_summary("4.18.0-513.el8.x86_64")
    issue = next(i for i in s["issues"] if i["id"] == "KI-CORE-SOMAXCONN-128")
    assert issue["applies"] is None
    assert s["sysctls"]["net.core.somaxconn"]["unknown_because"] == ["KI-CORE-SOMAXCONN-128"]


def test_explain_a_known_issue() -> None:
    p = run("explain", "ki-ct-challenge-ack-rst", env={"COLUMNS": "80"})
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(CHALLENGE)
    assert "c410cb974f2b" in p.stdout and "6.1.9" in p.stdout
    assert max(len(line) for line in p.stdout.splitlines()) <= 80


def test_explain_an_unknown_issue_suggests() -> None:
    p = run("explain", "KI-CT-CHALENGE-ACK-RST")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        f"tcpaudit: unknown kernel issue 'KI-CT-CHALENGE-ACK-RST'; did you mean {CHALLENGE}? "
        "(`tcpaudit kernel RELEASE` lists them)"
    ]


def test_a_snapshot_with_proc_version_is_judged_as_its_point_release(tmp_path: Path) -> None:
    snap = json.loads((ROOT / "fixtures" / "snapshots" / "centos7-3.10.0-327-tw-recycle.json").read_text())
    snap["kernel"] = {"release": "6.1.0-18-amd64", "proc_version": CASES[1]["version"].replace("6.1.0-21", "6.1.0-18")}
    f = tmp_path / "s.json"
    f.write_text(json.dumps(snap))
    from tcpaudit.audit import facts_for
    from tcpaudit.context import ContextOptions, resolve_context
    from tcpaudit.loading import load_snapshot_file

    s = load_snapshot_file(f)
    facts = facts_for(s, resolve_context(ContextOptions(), s))
    assert facts.release is not None and facts.release.upstream == "6.1.90"


def test_a_collector_dump_carries_proc_version_and_is_judged_by_it() -> None:
    """The remote collector (collector.sh) frames /proc/version; a Debian host's dump is judged as 6.1.76."""
    import re
    import subprocess

    dump = subprocess.run(
        ["sh", str(ROOT / "tcpaudit" / "collect" / "collector.sh")], capture_output=True, timeout=120
    ).stdout.decode("utf-8", "replace")
    assert "@@tcpaudit-begin proc_version" in dump
    dump = re.sub(r"(@@tcpaudit-begin osrelease\n)\|[^\n]*", r"\1|6.1.0-18-amd64", dump)
    debian = "Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) " + CASES[0]["version"]
    dump = re.sub(r"(@@tcpaudit-begin proc_version\n)\|[^\n]*", lambda m: m.group(1) + "|" + debian, dump)
    p = run("audit", "-", "--format", "json", input=dump)
    assert p.returncode in (0, 1), p.stderr
    (t,) = json.loads(p.stdout)["targets"]
    assert t["kernel"] == {"release": "6.1.0-18-amd64", "version": "6.1.76"}
