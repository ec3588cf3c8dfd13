"""`tcpaudit fleet`'s progress line: on a real terminal (a pty) it shows done / failed / in flight and is erased
at the end; with stderr not a terminal, or in CI, nothing is printed."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sshd  # noqa: E402  (tests/sshd.py: shared helpers, imported explicitly)

from tcpaudit.cli.fleet import Progress, progress_wanted  # noqa: E402

needs_sshd = pytest.mark.skipif(not sshd.have_sshd(), reason="OpenSSH server not installed")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("tty", "env", "wanted"),
    [
        (True, {}, True),
        (True, {"CI": "true"}, False),
        (True, {"CI": "1"}, False),
        (True, {"CI": "false"}, True),
        (True, {"TERM": "dumb"}, False),
        (False, {}, False),
    ],
)
def test_progress_only_on_a_terminal_outside_ci(tty, env, wanted):
    assert progress_wanted(_Tty() if tty else io.StringIO(), env) is wanted


def test_progress_line_counts_and_fits_the_width():
    out = _Tty()
    p = Progress(10, out, interval=3600)  # no redraw by its thread during the test
    try:
        for _ in range(4):
            p.start(None)
        ok = type("T", (), {"status": type("S", (), {"value": "ok"})()})()
        bad = type("T", (), {"status": type("S", (), {"value": "timeout"})()})()
        p.advance(ok)
        p.advance(bad)
        line = p.line(100)
        assert "2/10 done, 1 failed, 2 in flight" in line and line.startswith("auditing [")
        assert len(p.line(30)) < 30  # a narrow terminal gets no bar and a cut line, never a wrapped one
    finally:
        p.stop()
    assert out.getvalue() == ""  # nothing was drawn, so nothing to erase


def _read_pty(fd: int, proc: subprocess.Popen, timeout: float) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed its side
                chunk = b""
            if not chunk and proc.poll() is not None:
                break
            buf += chunk
        elif proc.poll() is not None:
            break
    return buf


@pytest.fixture(scope="module")
def small_fleet(tmp_path_factory):
    """Three healthy sshd hosts, one refused port (fails at once) and one host that never answers (stays in
    flight until the connect timeout), so the line shows all three counts."""
    work = tmp_path_factory.mktemp("progress")
    fleet = sshd.start_fleet(work, 3, prefix="p")
    silent = sshd.SilentServer()
    refused = sshd.RefusingPort()
    try:
        hosts = [*fleet.aliases(), f"127.0.0.1:{refused.port}", f"127.0.0.1:{silent.port}"]
        yield fleet, hosts
    finally:
        refused.stop()
        silent.stop()
        fleet.stop()


def _fleet_argv(fleet, hosts, connect_timeout: float = 3):
    return [
        *sshd.tcpaudit_argv(),
        "fleet",
        *hosts,
        "--ssh-config",
        str(fleet.ssh_config),
        "--known-hosts",
        str(fleet.keys.known_hosts),
        "-i",
        str(fleet.keys.client_key),
        "--connect-timeout",
        str(connect_timeout),
        "-f",
        "json",
    ]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "SSH_AUTH_SOCK")}
    env["PYTHONPATH"] = str(sshd.REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["TERM"] = "xterm"
    env.update(extra)
    return env


@needs_sshd
@pytest.mark.ssh
def test_progress_on_a_real_terminal_and_silence_in_ci(small_fleet, tmp_path):
    fleet, hosts = small_fleet
    for ci in ("", "true"):
        master, slave = pty.openpty()
        out = tmp_path / f"report-{ci or 'tty'}.json"
        try:
            with open(out, "wb") as stdout:
                proc = subprocess.Popen(
                    _fleet_argv(fleet, hosts),
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=slave,
                    env=_env(**({"CI": ci} if ci else {})),
                )
            os.close(slave)
            slave = -1
            raw = _read_pty(master, proc, 60)
            proc.wait(60)
        finally:
            os.close(master)
            if slave >= 0:
                os.close(slave)
        assert proc.returncode == 3  # two hosts could not be audited
        report = json.loads(out.read_text())  # the report on stdout is untouched by the progress line
        assert sorted(t["name"] for t in report["targets"]) == sorted(h.lower() for h in hosts)
        text = raw.decode("utf-8", "replace")
        if ci:
            assert "auditing" not in text, text  # CI: not a word, although stderr is a terminal
            continue
        frames = [ANSI.sub("", f) for f in text.split("\r") if "auditing" in f]
        assert frames, text
        counts = [re.search(r"(\d+)/5 done, (\d+) failed, (\d+) in flight", f) for f in frames]
        assert all(counts), frames
        seen = [tuple(int(x) for x in m.groups()) for m in counts if m]
        assert any(failed >= 1 and flight >= 1 for _, failed, flight in seen), seen  # the refused and the hung
        assert all(done + flight <= 5 and failed <= done for done, failed, flight in seen), seen
        assert text.endswith("\r\x1b[K"), repr(text[-40:])  # erased at the end: the terminal is left clean


@needs_sshd
@pytest.mark.ssh
def test_no_progress_when_stderr_is_not_a_terminal(small_fleet):
    fleet, hosts = small_fleet
    # only the healthy hosts, so no connect timeout is waited for: a generous one cannot fail them on a loaded machine
    p = subprocess.run(
        _fleet_argv(fleet, hosts[:3], connect_timeout=120),
        capture_output=True,
        stdin=subprocess.DEVNULL,
        env=_env(),
        timeout=600,
    )
    assert p.returncode in (0, 1), p.stderr
    assert p.stderr == b"", p.stderr  # not a byte on a pipe
