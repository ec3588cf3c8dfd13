"""`tcpaudit host`, `snapshot`, `audit` end to end on the real machine."""

from __future__ import annotations

import json
import os
import platform
import socket
from pathlib import Path

import pytest

from .cli import run, run_json

SEVERITIES = {"info", "low", "medium", "high", "critical"}
STATUSES = {"ok", "unreachable", "auth_failed", "host_key_rejected", "timeout", "bad_output", "error", "interrupted"}


def check_contract(report: dict) -> None:
    assert set(report) >= {"tool", "targets", "summary"}
    assert report["tool"]["name"] == "tcpaudit" and report["tool"]["version"]
    for t in report["targets"]:
        assert set(t) >= {"name", "kind", "status", "error", "kernel", "findings"}
        assert t["kind"] in ("host", "config")
        assert t["status"] in STATUSES
        assert set(t["kernel"]) >= {"release", "version"}
        for f in t["findings"]:
            assert set(f) >= {
                "rule",
                "severity",
                "title",
                "keys",
                "evidence",
                "explanation",
                "remediation",
                "references",
                "location",
            }
            assert f["severity"] in SEVERITIES
            assert all(k.startswith("net.") for k in f["keys"]), f["keys"]
            if t["kind"] == "host":
                assert f["location"] is None


def test_host_json_matches_the_machine() -> None:
    _, report = run_json("host")
    check_contract(report)
    (t,) = report["targets"]
    assert t["status"] == "ok"
    assert t["kernel"]["release"] == platform.release()
    assert t["name"] == socket.gethostname()
    assert t["sysctls"], "the report carries the values of the sysctls the rules read"
    for key, value in t["sysctls"].items():
        path = Path("/proc/sys", *key.split("."))
        assert " ".join(path.read_text().split()) == value, key
    assert {c["outcome"] for c in t["checks"]} <= {"pass", "fail", "not_applicable", "error"}
    assert not [c for c in t["checks"] if c["outcome"] == "error"], "no rule may crash on a real host"


def test_default_modern_kernel_without_context_has_no_high_findings() -> None:
    code, report = run_json("host", "--no-auto-context")
    bad = [f for f in report["targets"][0]["findings"] if f["severity"] in ("high", "critical")]
    assert not bad, bad
    assert code == 0


def test_nat_idle_timeout_flags_default_keepalive_with_numbers() -> None:
    keepalive = int(Path("/proc/sys/net/ipv4/tcp_keepalive_time").read_text())
    if keepalive < 240:
        pytest.skip(f"this machine's tcp_keepalive_time is {keepalive}, below 240")
    _, report = run_json("host", "--nat-idle-timeout", "240")
    nat = [f for f in report["targets"][0]["findings"] if f["rule"] == "NAT001"]
    assert nat, report["targets"][0]["checks"]
    assert nat[0]["evidence"]["tcp_keepalive_time"] == keepalive
    assert nat[0]["evidence"]["nat_idle_timeout"] == 240
    assert "240" in nat[0]["explanation"] and str(keepalive) in nat[0]["explanation"]


def test_snapshot_then_audit_gives_the_same_findings(tmp_path: Path) -> None:
    # The live audit is compared with a snapshot taken a moment earlier, so both read one network namespace that
    # nothing else on this shared machine changes in between: a private one (as root); the host's otherwise.
    private = ("unshare", "--net", "--") if os.geteuid() == 0 else ()
    snap = tmp_path / "snap.json"
    p = run("snapshot", "-o", str(snap), prefix=private)
    assert p.returncode == 0, p.stderr
    data = json.loads(snap.read_text())
    assert data["schema_version"] == 1 and data["source"] == "local"
    assert data["kernel"]["release"] == platform.release()
    _, offline = run_json("audit", str(snap), "--nat-idle-timeout", "240")
    _, live = run_json("host", "--nat-idle-timeout", "240", prefix=private)
    key = lambda r: sorted((f["rule"], f["severity"]) for f in r["targets"][0]["findings"])  # noqa: E731
    assert key(offline) == key(live)


def test_schema_command_prints_the_snapshot_json_schema() -> None:
    p = run("schema")
    assert p.returncode == 0
    schema = json.loads(p.stdout)
    assert "schema_version" in schema["properties"] and "sockets" in schema["properties"]


def test_version() -> None:
    from tcpaudit import __version__

    p = run("--version")
    assert p.returncode == 0 and p.stdout.strip() == f"tcpaudit {__version__}"


BAD_SNAPSHOTS = {
    "empty.json": b"",
    "truncated.json": None,  # filled from a real snapshot below
    "notjson.json": b"this is not json\n",
    "binary.json": bytes(range(256)),
    "wrongshape.json": b'{"hello": "world"}',
    "array.json": b"[1, 2, 3]",
    "future.json": None,
}


@pytest.mark.parametrize("name", sorted(BAD_SNAPSHOTS))
def test_bad_snapshot_files_give_one_line_and_exit_2(tmp_path: Path, name: str) -> None:
    good = tmp_path / "good.json"
    assert run("snapshot", "-o", str(good)).returncode == 0
    data = BAD_SNAPSHOTS[name]
    if name == "truncated.json":
        data = good.read_bytes()[: len(good.read_bytes()) // 2]
    elif name == "future.json":
        doc = json.loads(good.read_text())
        doc["schema_version"] = 999
        data = json.dumps(doc).encode()
    bad = tmp_path / name
    bad.write_bytes(data)
    p = run("audit", str(bad))
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert str(bad) in lines[0]
    assert "Traceback" not in p.stderr and p.stdout == ""


def test_missing_and_directory_snapshot(tmp_path: Path) -> None:
    for target in (tmp_path / "nope.json", tmp_path):
        p = run("audit", str(target))
        assert p.returncode == 2 and str(target) in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_usage_errors_exit_2() -> None:
    for args in (
        ["host", "--fail-on", "bogus"],
        ["host", "--format", "yaml"],
        ["host", "--profile", "nope"],
        ["host", "--clients-behind-nat", "maybe"],
        ["explain", "XYZ999"],
        ["kernel", "not-a-kernel"],
        ["no-such-command"],
    ):
        p = run(*args)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert "Traceback" not in p.stderr


def test_fail_on_gates_the_exit_code(tmp_path: Path) -> None:
    code, report = run_json("host", "--nat-idle-timeout", "1", "--fail-on", "info")
    assert report["summary"]["findings"] > 0
    assert code == 1
    code, _ = run_json("host", "--nat-idle-timeout", "1", "--fail-on", "critical", "--no-auto-context")
    assert code == 0


def test_several_formats_at_once(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    p = run("host", "--format", f"json:{out}", "--format", "table")
    assert p.returncode in (0, 1), p.stderr
    assert json.loads(out.read_text())["targets"]
    assert "target(s)" in p.stdout


def test_remediate_writes_a_commented_sysctl_d(tmp_path: Path) -> None:
    snap = tmp_path / "s.json"
    assert run("snapshot", "-o", str(snap)).returncode == 0
    p = run("remediate", str(snap), "--nat-idle-timeout", "60")
    assert p.returncode == 0, p.stderr
    assert "net.ipv4.tcp_keepalive_time = 30" in p.stdout
    assert p.stdout.splitlines()[0].startswith("# Generated by tcpaudit")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an unprivileged user")
def test_unprivileged_user_still_works_and_lists_gaps() -> None:
    import shutil
    import subprocess
    import sys

    setpriv = shutil.which("setpriv")
    if not setpriv:
        pytest.skip("setpriv (util-linux) not installed")
    p = subprocess.run(
        [
            setpriv,
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-m",
            "tcpaudit",
            "host",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert p.returncode in (0, 1), p.stderr
    t = json.loads(p.stdout)["targets"][0]
    assert t["status"] == "ok"
    assert t["gaps"], "an unprivileged run lists what it could not read"
    assert any("permission" in g for g in t["gaps"])


# ---- hardening: numbers, unreadable files, Ctrl-C, help, stdin, output paths ------------------------------
@pytest.fixture(scope="module")
def real_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    snap = tmp_path_factory.mktemp("real") / "snap.json"
    p = run("snapshot", "-o", str(snap))
    assert p.returncode == 0, p.stderr
    return snap


def assert_one_line_error(p, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert p.returncode == 2, (p.returncode, p.stdout[:300], p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr and p.stdout == ""
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# (path in the document, raw JSON text of the value, the field path the error names)
HOSTILE_NUMBERS = [
    (("uptime_s",), str(10**400), "uptime_s"),
    (("uptime_s",), "1e999999", "uptime_s"),
    (("uptime_s",), "NaN", "uptime_s"),
    (("uptime_s",), "Infinity", "uptime_s"),
    (("uptime_s",), "-Infinity", "uptime_s"),
    (("conntrack", "count"), str(10**4000), "conntrack.count"),
    (("conntrack", "count"), "-1", "conntrack.count"),
    (("conntrack", "max"), "-5", "conntrack.max"),
    (("conntrack", "max"), str(2**64), "conntrack.max"),
    (("counters", "netstat", "TcpExt", "ListenDrops"), str(2**64), "counters.netstat.TcpExt.ListenDrops"),
    (("counters", "snmp", "Tcp", "ActiveOpens"), "NaN", "counters.snmp.Tcp.ActiveOpens"),
    (("schema_version",), '"1"', "schema_version"),
]


@pytest.mark.parametrize(
    ("path", "raw", "where"), HOSTILE_NUMBERS, ids=[f"{w}={r[:12]}" for _, r, w in HOSTILE_NUMBERS]
)
def test_snapshot_numbers_a_kernel_cannot_report_are_input_errors(
    real_snapshot: Path, tmp_path: Path, path: tuple, raw: str, where: str
) -> None:
    """They used to load and crash rules: exit 1 with a HIGH "rule error" finding."""
    doc = json.loads(real_snapshot.read_text())
    slot = doc
    for key in path[:-1]:
        slot = slot.setdefault(key, {})
    slot[path[-1]] = "@@number@@"
    bad = tmp_path / "hostile.json"
    bad.write_text(json.dumps(doc).replace('"@@number@@"', raw))
    assert_one_line_error(run("audit", str(bad), "--format", "json"), str(bad), where)


def test_schema_is_2020_12_and_validates_a_real_snapshot(real_snapshot: Path) -> None:
    import jsonschema

    p = run("schema")
    assert p.returncode == 0, p.stderr
    schema = json.loads(p.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    doc = json.loads(real_snapshot.read_text())
    assert not list(validator.iter_errors(doc))
    for field, value in (("schema_version", "1"), ("uptime_s", -1)):
        assert list(validator.iter_errors({**doc, field: value})), field  # as the loader says
    assert list(validator.iter_errors({**doc, "conntrack": {**doc["conntrack"], "count": -1}}))


def test_unreadable_snapshot_is_one_line_naming_the_file(tmp_path: Path) -> None:
    """Was typer's four-line usage block ("Invalid value for 'files': ... is not readable")."""
    import shutil
    import subprocess
    import sys
    import tempfile

    if os.geteuid() != 0:
        snap = tmp_path / "secret.json"
        snap.write_text("{}")
        snap.chmod(0)
        assert_one_line_error(run("audit", str(snap)), str(snap), "Permission denied")
        return
    setpriv = shutil.which("setpriv")
    if not setpriv:
        pytest.skip("root cannot make a file unreadable to itself, and setpriv (util-linux) is not installed")
    d = Path(tempfile.mkdtemp(prefix="tcpaudit-unreadable-"))
    try:
        d.chmod(0o755)  # the unprivileged user may look up the file, not read it
        snap = d / "secret.json"
        snap.write_text("{}")
        snap.chmod(0o600)
        nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "tcpaudit"]
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(Path(__file__).parents[1])}
        for args in (["audit", str(snap)], ["remediate", str(snap)], ["audit", "-", "--config", str(snap)]):
            p = subprocess.run(
                [*nobody, *args], capture_output=True, text=True, timeout=120, cwd="/", env=env, input=""
            )
            assert_one_line_error(p, str(snap), "Permission denied")
    finally:
        shutil.rmtree(d)


def test_loader_reports_a_read_error_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import builtins

    from tcpaudit.loading import SnapshotFileError, load_snapshot_file

    def denied(*args, **kw):  # type: ignore[no-untyped-def]
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(builtins, "open", denied)
    with pytest.raises(SnapshotFileError) as info:
        load_snapshot_file(tmp_path / "s.json")
    assert str(info.value) == f"{tmp_path / 's.json'}: cannot read: Permission denied"


def _interrupt(*args: str) -> tuple[int, str, str]:
    """Run tcpaudit, Ctrl-C it once it is asleep in --sample, and return (exit code, stdout, stderr)."""
    import signal
    import subprocess
    import sys
    import time

    from .cli import ROOT

    env = {**os.environ}
    env.pop("TCPAUDIT_DEBUG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcpaudit", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # asleep between the two counter samples: wchan says nanosleep
        time.sleep(0.2)
        try:
            wchan = Path(f"/proc/{proc.pid}/wchan").read_text()
        except OSError:
            wchan = ""
        if "sleep" in wchan or (not wchan.strip("0") and time.monotonic() > deadline - 25):
            break  # no wchan (restricted /proc): five seconds is long enough to be past the imports
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def test_ctrl_c_during_host_writes_the_report_and_says_so() -> None:
    """Was exit 130 with empty stdout and stderr."""
    code, out, err = _interrupt("host", "--sample", "60", "--format", "json")
    assert code == 130, (code, err)
    assert err.startswith("tcpaudit: interrupted") and len(err.strip().splitlines()) == 1, err
    report = json.loads(out)
    check_contract(report)
    (t,) = report["targets"]
    assert t["status"] == "interrupted" and t["name"] == socket.gethostname()
    assert report["summary"]["exit_code"] == 130


def test_ctrl_c_with_no_report_to_write_still_says_so() -> None:
    code, out, err = _interrupt("snapshot", "-o", "-", "--sample", "60")
    assert code == 130 and out == ""
    assert err.strip() == "tcpaudit: interrupted", err


def _commands() -> list[str]:
    p = run("--help")
    section = p.stdout.split("Commands:", 1)[1]
    # a command row starts with two spaces and its name; a wrapped help text starts with more spaces
    return [line.split()[0] for line in section.splitlines() if line.startswith("  ") and line[2:3].strip()]


def test_help_shows_placeholders_not_python_types() -> None:
    import re

    commands = _commands()
    assert {"host", "audit", "kernel", "fleet", "lint"} <= set(commands)
    helps = {}
    for command in commands:
        p = run(command, "--help")
        assert p.returncode == 0, (command, p.stderr)
        # typer's defaults: `<list[str]>`, `<int range>`, `<path>`, `{files}...`
        assert not re.search(r"<[a-z][a-z \[\]|,]*>|\{\w+\}", p.stdout), (command, p.stdout)
        helps[command] = p.stdout
    audit = helps["audit"]
    assert audit.splitlines()[0].endswith(" audit [OPTIONS] PATH..."), audit  # files or Ansible tree dirs
    for text in ("-f, --format FORMAT[:PATH]", "--fail-on SEVERITY", "--config FILE", "--profile PROFILE"):
        assert text in audit, text
    host = helps["host"]
    for text in ("[OPTIONS] [HOST]", "-p, --port PORT", "--sample SECONDS", "--save-snapshot FILE"):
        assert text in host, text
    assert "[OPTIONS] [RELEASE]" in helps["kernel"]  # default: this machine's


def test_snapshot_file_with_a_utf8_bom_is_audited(real_snapshot: Path, tmp_path: Path) -> None:
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + real_snapshot.read_bytes())
    code, report = run_json("audit", str(bom))
    assert report["targets"][0]["status"] == "ok"


def test_audit_dash_reads_a_snapshot_or_a_dump_from_stdin(real_snapshot: Path) -> None:
    import subprocess

    from .cli import ROOT

    code, report = run_json("audit", "-", input=real_snapshot.read_text())
    assert report["targets"][0]["name"] == json.loads(real_snapshot.read_text())["hostname"]
    collector = ROOT / "tcpaudit" / "collect" / "collector.sh"
    dump = subprocess.run(["sh", collector], capture_output=True, text=True, timeout=120).stdout
    code, report = run_json("audit", "-", input=dump)
    assert report["targets"][0]["status"] == "ok"
    assert_one_line_error(run("audit", "-", input=""), "<stdin>", "empty")
    assert_one_line_error(run("audit", "-", "-", input=real_snapshot.read_text()), "'-'")


def test_output_path_naming_a_directory_is_one_line(tmp_path: Path) -> None:
    """`snapshot -o newdir/` wrote a file named newdir."""
    missing = tmp_path / "newdir"
    for args in (
        ["snapshot", "-o", f"{missing}/"],
        ["host", "--format", f"json:{missing}/"],
        ["host", "--save-snapshot", f"{missing}/"],
        ["snapshot", "-o", str(tmp_path)],
    ):
        p = run(*args)
        assert_one_line_error(p, args[-1].split("json:")[-1])
        assert not missing.exists()
