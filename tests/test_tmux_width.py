"""In a real terminal (tmux) at 80 and 160 columns, no line of `host`, `lint`, `fleet`, `kernel`, `rules` or `audit`
is wider than the terminal, with colour (a TTY) and with NO_COLOR.

tmux's pane is a real pty: tcpaudit finds the width itself (COLUMNS is unset). `capture-pane -p -e -J` gives the
pane's text with its escape codes, with the lines tmux had to wrap joined back, so a line that overflowed the pane
shows as a line longer than the pane.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import time

import pytest
from rich.cells import cell_len

from .cli import ROOT

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (scripts/test installs it)")

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]")
DONE = "ta-pane-done"
SNAPSHOT = "fixtures/snapshots/centos7-3.10.0-327-tw-recycle.json"
COMMANDS = {
    "host": ["host"],
    "host -v": ["host", "-v"],
    "lint": ["lint", "--kernel", "5.15.0", "fixtures/corpus"],
    "fleet": ["fleet", "127.0.0.1:1", "localhost:1", "--known-hosts", os.devnull, "--connect-timeout", "2"],
    "kernel": ["kernel", "5.4.0-137-generic"],
    "rules": ["rules"],
    "profiles": ["profiles"],
    "explain": ["explain", "NAT001"],
    "audit -v": ["audit", SNAPSHOT, "-v"],
}


class Tmux:
    def __init__(self, width: int) -> None:
        self.socket = f"ta-ux1-{secrets.token_hex(4)}"
        self.width = width

    def __call__(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, "-f", os.devnull, *args], capture_output=True, text=True, check=True
        ).stdout

    def run(self, argv: list[str], env: dict[str, str]) -> str:
        """Run one command in a fresh pane of this width and return the pane's text (escape codes included)."""
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        cmd = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "tcpaudit", *argv])
        script = (
            f"cd {shlex.quote(str(ROOT))}; unset COLUMNS LINES FORCE_COLOR NO_COLOR; export TERM=xterm-256color "
            f"{exports}; {cmd}; echo {DONE}; sleep 600"
        )
        self("new-session", "-d", "-x", str(self.width), "-y", "50", "-s", "t", "sh", "-c", script)
        self("set-option", "-t", "t", "history-limit", "100000")
        deadline = time.monotonic() + 240  # a bound on a hung command, not an assertion about speed
        text = ""
        while time.monotonic() < deadline:
            text = self("capture-pane", "-p", "-e", "-J", "-S", "-", "-E", "-", "-t", "t")
            if DONE in ANSI.sub("", text).split("\n")[-3:] or f"\n{DONE}\n" in ANSI.sub("", text) + "\n":
                break
            time.sleep(0.2)
        self("kill-session", "-t", "t")
        return text

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture(params=[80, 160], ids=lambda w: f"{w}cols")
def tmux(request):
    t = Tmux(request.param)
    # history-limit applies to panes created after it is set: a server with a big default first
    subprocess.run(
        ["tmux", "-L", t.socket, "-f", os.devnull, "new-session", "-d", "-s", "keep", "sleep 600"],
        check=True,
        capture_output=True,
    )
    t("set-option", "-g", "history-limit", "100000")
    yield t
    t.close()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_no_line_wider_than_the_terminal(tmux: Tmux, name: str) -> None:
    for env in ({}, {"NO_COLOR": "1"}):
        pane = tmux.run(COMMANDS[name], env)
        plain = ANSI.sub("", pane)
        assert DONE in plain, f"{name} did not finish: {plain[-500:]}"
        body = plain[: plain.rindex(DONE)]
        assert "Traceback" not in body and body.strip(), body[-1000:]
        wide = [line for line in body.split("\n") if cell_len(line) > tmux.width]
        assert not wide, f"{name} at {tmux.width} columns: {len(wide)} line(s) wider, e.g. {wide[0]!r}"
        if name == "rules" and not env:
            assert "\x1b[" in pane  # a terminal: coloured severities
        if env.get("NO_COLOR"):
            assert "\x1b[3" not in pane.split(DONE)[0] and "\x1b[1;3" not in pane.split(DONE)[0]  # no colours
