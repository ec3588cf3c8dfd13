"""What really happens to the text after `=`: procps `sysctl -p FILE`, `systemd-sysctl FILE` and raw writes,
each in a fresh network namespace (`unshare --net`, gone when the process exits), the values read back.

The expectations are tcpaudit's own: the effective value lint computes for each key (tcpaudit/lint/values.py,
run.effective_settings) must be what the kernel holds afterwards, and the messages SYS002/SYS004 quote must be
what the tools print. Nothing here changes the root namespace: every write happens inside the new namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from tcpaudit.audit import kernel_db, parse_release_or_none
from tcpaudit.lint.files import parse_text
from tcpaudit.lint.run import effective_settings
from tcpaudit.lint.text import parse_tuned
from tcpaudit.lint.values import check_value

SYSTEMD_SYSCTL = next(
    (p for p in ("/lib/systemd/systemd-sysctl", "/usr/lib/systemd/systemd-sysctl") if Path(p).exists()), None
)

CONF = textwrap.dedent("""\
    net.ipv4.tcp_keepalive_time = 300   # five minutes
    net.ipv4.ip_local_port_range = 20000 30000 # c
    net.ipv4.tcp_congestion_control = reno # c
    net.ipv4.tcp_fin_timeout = "33"
    net.ipv4.tcp_syn_retries =
    this is a wrapped comment line
    net.ipv4.tcp_keepalive_probes = 4 ; semi
    net.ipv4.tcp_rmem = 4096 # c
    net.ipv4.tcp_keepalive_intvl = 31
    """)
KEYS = [
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_congestion_control",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_syn_retries",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_keepalive_intvl",
]

# Runs inside the new namespace: values before, the applier (or raw writes), values after, as JSON.
INSIDE = r"""
import json, os, subprocess, sys
keys = json.loads(sys.argv[1]); cmd = json.loads(sys.argv[2])
def read(k):
    with open("/proc/sys/" + k.replace(".", "/")) as f:
        return " ".join(f.read().split())
out = {"before": {k: read(k) for k in keys}}
if cmd and cmd[0] == "raw":
    path = "/proc/sys/net/ipv4/tcp_keepalive_time"
    fd = os.open(path, os.O_WRONLY)
    out["first"] = os.write(fd, b"900 # comment\n")       # one write() of the whole line
    out["second"] = os.write(fd, b"# comment\n")          # what stdio writes again: at a non-zero offset
    os.close(fd)
    out["after_comment"] = read("net.ipv4.tcp_keepalive_time")
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, b"\n")
        out["empty"] = "accepted"
    except OSError as e:
        out["empty"] = e.errno
    os.close(fd)
    with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as f:
        f.write(sys.argv[3] + "\n")
    out["range"] = read("net.ipv4.ip_local_port_range")
else:
    p = subprocess.run(cmd, capture_output=True, text=True)
    out["rc"], out["stderr"], out["stdout"] = p.returncode, p.stderr, p.stdout
out["after"] = {k: read(k) for k in keys}
print(json.dumps(out))
"""


def _why_not() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux (writes sysctls inside a new network namespace)"
    if shutil.which("unshare") is None:
        return "needs unshare(1)"
    p = subprocess.run(["unshare", "--net", "true"], capture_output=True)
    if p.returncode != 0:
        return "cannot create a network namespace here"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")


@pytest.fixture
def conf_file():
    d = tempfile.mkdtemp(prefix="ta-sys002-")
    try:
        path = Path(d) / "99-test.conf"
        path.write_text(CONF)
        yield path
    finally:
        shutil.rmtree(d)


def _inside(cmd: list[str], *extra: str) -> dict:
    p = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", INSIDE, json.dumps(KEYS), json.dumps(cmd), *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _predicted(path: Path) -> dict[str, str | None]:
    """What lint says each key ends up with on this kernel (None: the write fails, the value stays)."""
    (unit,) = parse_text(path.read_text(), str(path))
    release = parse_release_or_none(os.uname().release)
    eff = effective_settings(unit.assignments, kernel_db(), release)
    out: dict[str, str | None] = {}
    for key in KEYS:
        if key in eff:
            out[key] = " ".join(eff[key][0].split())
        else:
            # not in the knowledge base (tcp_congestion_control): SYS002's verdict decides
            (a,) = [a for a in unit.assignments if a.key == key]
            assert check_value(a, kernel_db(), release).status == "invalid", key
            out[key] = None
    return out


def _assert_prediction_holds(path: Path, result: dict) -> None:
    for key, want in _predicted(path).items():
        got = result["after"][key]
        if want is None:
            assert got == result["before"][key], f"{key}: lint says the write fails, but the kernel holds {got!r}"
        else:
            assert got == want, f"{key}: lint says {want!r} applies, the kernel holds {got!r}"


def test_lint_problem_messages(conf_file: Path) -> None:
    (unit,) = parse_text(conf_file.read_text(), str(conf_file))
    (problem,) = unit.problems
    assert problem.location.line == 6
    assert "invalid syntax, continuing" in problem.message and "Line is not an assignment" in problem.message


@pytest.mark.skipif(shutil.which("sysctl") is None, reason="procps sysctl not installed")
def test_procps_sysctl_p(conf_file: Path) -> None:
    r = _inside(["sysctl", "-p", str(conf_file)])
    _assert_prediction_holds(conf_file, r)
    # the wrapped comment: a warning, and the lines after it still apply
    assert f"{conf_file}(6): invalid syntax, continuing..." in r["stderr"]
    assert r["after"]["net.ipv4.tcp_keepalive_intvl"] == "31"
    # the integer with a comment applied silently: sysctl echoes the line, no error for that key
    assert "net.ipv4.tcp_keepalive_time = 300   # five minutes" in r["stdout"]
    assert 'setting key "net.ipv4.tcp_keepalive_time"' not in r["stderr"]
    # refused: the text key with a comment (ENOENT), quotes, the empty value, a comment cutting a vector short
    assert 'setting key "net.ipv4.tcp_congestion_control": No such file or directory' in r["stderr"]
    for key in ("tcp_fin_timeout", "tcp_syn_retries", "tcp_rmem"):
        assert f'setting key "net.ipv4.{key}": Invalid argument' in r["stderr"]
    assert r["rc"] == 1


@pytest.mark.skipif(SYSTEMD_SYSCTL is None, reason="systemd-sysctl not installed")
def test_systemd_sysctl(conf_file: Path) -> None:
    assert SYSTEMD_SYSCTL is not None
    r = _inside([SYSTEMD_SYSCTL, str(conf_file)])
    _assert_prediction_holds(conf_file, r)
    assert "Line is not an assignment" in r["stderr"]
    assert r["after"]["net.ipv4.tcp_keepalive_intvl"] == "31"
    assert "Couldn't write '' to 'net/ipv4/tcp_syn_retries'" in r["stderr"]  # the empty value is written
    assert "'net/ipv4/tcp_keepalive_time'" not in r["stderr"]
    assert r["rc"] == 1


@pytest.mark.skipif(SYSTEMD_SYSCTL is None, reason="systemd-sysctl not installed")
def test_systemd_sysctl_exits_1_for_a_non_assignment_alone(conf_file: Path) -> None:
    conf_file.write_text("this is a wrapped comment line\nnet.ipv4.tcp_keepalive_intvl = 31\n")
    assert SYSTEMD_SYSCTL is not None
    r = _inside([SYSTEMD_SYSCTL, str(conf_file)])
    assert r["rc"] == 1 and r["after"]["net.ipv4.tcp_keepalive_intvl"] == "31"
    if shutil.which("sysctl"):
        r = _inside(["sysctl", "-p", str(conf_file)])
        assert r["rc"] == 0 and r["after"]["net.ipv4.tcp_keepalive_intvl"] == "31"  # procps: a warning only


def test_raw_writes_and_tuned_unquoting() -> None:
    (a,) = parse_tuned('[sysctl]\nnet.ipv4.ip_local_port_range = "1024 65535" # wide\n', "tuned.conf")[0]
    r = _inside(["raw"], a.value or "")
    # the kernel consumed "900 " (4 bytes), stored 900, and ignored the rewrite of the rest at offset 4
    assert r["first"] == 4 and r["second"] == len(b"# comment\n") and r["after_comment"] == "900"
    assert r["empty"] == 22  # EINVAL: an empty line is not a number
    assert r["range"] == "1024 65535"  # what tuned writes after stripping the quotes: the range applies
    assert check_value(a, kernel_db(), parse_release_or_none(os.uname().release)).status == "ok"


@pytest.mark.skipif(shutil.which("sysctl") is None, reason="procps sysctl not installed")
@pytest.mark.parametrize(
    "text",
    [
        "net.ipv4.ip_local_port_range = 1000 65000\n",  # below the default ip_unprivileged_port_start (1024)
        "net.ipv4.ip_unprivileged_port_start = 900\nnet.ipv4.ip_local_port_range = 1000 65000\n",
    ],
)
def test_port_range_against_ip_unprivileged_port_start(conf_file: Path, text: str) -> None:
    conf_file.write_text(text)
    keys = ["net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start"]
    (unit,) = parse_text(text, str(conf_file))
    eff = effective_settings(unit.assignments, kernel_db(), parse_release_or_none(os.uname().release))
    p = subprocess.run(
        [
            "unshare",
            "--net",
            sys.executable,
            "-c",
            INSIDE,
            json.dumps(keys),
            json.dumps(["sysctl", "-p", str(conf_file)]),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    r = json.loads(p.stdout)
    for key in keys:
        want = " ".join(eff[key][0].split()) if key in eff else r["before"][key]
        assert r["after"][key] == want, (key, r)


PER_NETNS = r"""
import ctypes, json, os, sys
keys = json.loads(sys.argv[1])
def path(k):
    return "/proc/sys/" + k.replace(".", "/")
def read(k):
    with open(path(k)) as f:
        return f.read().strip()
written = {}
for k in keys:
    if not os.path.exists(path(k)):
        continue
    old = int(read(k))
    new = str(1 - old) if old in (0, 1) else str(old + 7)  # booleans flipped, timeouts moved
    with open(path(k), "w") as f:
        f.write(new + "\n")
    written[k] = new
r, w = os.pipe()
if os.fork() == 0:  # a second new namespace, created while the first one holds the written values
    os.close(r)
    assert ctypes.CDLL(None, use_errno=True).unshare(0x40000000) == 0  # CLONE_NEWNET
    os.write(w, json.dumps({k: read(k) for k in written}).encode())
    os._exit(0)
os.close(w)
other = json.loads(os.read(r, 65536).decode())
os.wait()
print(json.dumps({"written": written, "here": {k: read(k) for k in written}, "other": other}))
"""


def test_per_netns_on_this_kernel() -> None:
    """The per_netns facts whose first verified release is this test host's: a value written in one new
    namespace is not what another new namespace sees (no global state is read or written)."""
    db = kernel_db()
    keys = sorted(
        name
        for name, fact in db.sysctls.items()
        for e in fact.per_netns
        if e.verified_by
        and "test_per_netns_on_this_kernel" in e.verified_by
        and name != "net.netfilter.nf_conntrack_count"
    )
    assert keys
    p = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", PER_NETNS, json.dumps(keys)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    if not r["written"]:
        pytest.skip("nf_conntrack is not loaded and no other key is present")
    for key, value in r["written"].items():
        assert r["here"][key] == value and r["other"][key] != value, (key, r)
