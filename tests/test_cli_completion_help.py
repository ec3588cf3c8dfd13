"""Shell completion, examples in every --help, --sample telling it samples, remediate -o confirming what it
wrote (issue 17, item 9). Through the real CLI; completion through a real bash."""

from __future__ import annotations

import os
import pty
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tcpaudit.cli._examples import EXAMPLES

from .cli import ROOT, run

SNAP = ROOT / "fixtures" / "snapshots" / "centos7-3.10.0-327-tw-recycle.json"


def _commands() -> list[str]:
    p = run("--help")
    block = p.stdout.split("Commands:", 1)[1]
    return [ln.split()[0] for ln in block.splitlines() if ln.startswith("  ") and not ln.startswith("   ")]


def _bin_dir(tmp_path: Path) -> Path:
    """A `tcpaudit` on PATH that runs this checkout, as the installed console script does."""
    d = tmp_path / "bin"
    d.mkdir()
    exe = d / "tcpaudit"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tcpaudit "$@"\n')
    exe.chmod(0o755)
    return d


def _bash_complete(tmp_path: Path, words: list[str]) -> list[str]:
    script = tmp_path / "tcpaudit.bash"
    p = run("completion", "bash")
    assert p.returncode == 0, p.stderr
    script.write_text(p.stdout)
    line = " ".join(f"'{w}'" for w in words)
    prog = (
        f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
        '_tcpaudit_completion tcpaudit; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    env = {**os.environ, "PATH": f"{_bin_dir(tmp_path)}:{os.environ['PATH']}"}
    env.pop("TCPAUDIT_DEBUG", None)
    out = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", prog], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return [w for w in out.stdout.splitlines() if w]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_a_command(tmp_path: Path) -> None:
    assert _bash_complete(tmp_path, ["tcpaudit", "ho"]) == ["host"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_an_option(tmp_path: Path) -> None:
    assert _bash_complete(tmp_path, ["tcpaudit", "host", "--fail"]) == ["--fail-on"]


@pytest.mark.parametrize("shell,marker", [("bash", "complete -o default -F"), ("zsh", "#compdef tcpaudit"),
                                          ("fish", "complete --command tcpaudit")])  # fmt: skip
def test_completion_scripts(shell: str, marker: str) -> None:
    p = run("completion", shell.upper() if shell == "zsh" else shell)
    assert p.returncode == 0, p.stderr
    assert marker in p.stdout and "_TCPAUDIT_COMPLETE" in p.stdout


def test_completion_unknown_shell_is_one_line() -> None:
    p = run("completion", "tcsh")
    assert p.returncode == 2
    assert p.stderr.splitlines() == ["tcpaudit: completion: unknown shell 'tcsh' (choose from bash, zsh, fish)"]


def test_every_command_has_examples_whose_options_exist() -> None:
    commands = _commands()
    assert set(commands) == set(EXAMPLES), "every command has examples, and every example a command"
    for cmd in commands:
        p = run(cmd, "--help", env={"COLUMNS": "80"})
        assert p.returncode == 0, p.stderr
        assert "Examples:" in p.stdout, cmd
        assert max(len(ln) for ln in p.stdout.splitlines()) <= 80, cmd
        for example in EXAMPLES[cmd]:
            assert example in p.stdout, f"{cmd}: {example!r} not shown as written"
            words = example.split("#")[0].split()
            if words[:2] != ["tcpaudit", cmd]:
                continue  # a pipeline or another command's line
            for opt in (w.split("=")[0] for w in words if w.startswith("-") and w != "-"):
                assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", p.stdout), f"{cmd}: {opt} is not an option"


def _run_with_tty_stderr(*args: str) -> tuple[int, str, str]:
    master, slave = pty.openpty()
    env = {**os.environ}
    env.pop("TCPAUDIT_DEBUG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcpaudit", *args], stdout=subprocess.PIPE, stderr=slave, cwd=ROOT, env=env
    )
    os.close(slave)
    out, _ = proc.communicate(timeout=300)
    err = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        err += chunk
    os.close(master)
    return proc.returncode, out.decode(), err.decode(errors="replace")


def test_sample_says_it_is_sampling_on_a_terminal_only() -> None:
    code, out, err = _run_with_tty_stderr("host", "--sample", "1", "--format", "json")
    assert code in (0, 1), err
    assert "tcpaudit: sampling counters for 1 s" in err
    import json

    (t,) = json.loads(out)["targets"]
    assert any(c.startswith("counters sampled twice, ") and "s apart (--sample)" in c for c in t["context"])
    piped = run("host", "--sample", "1", "--format", "json")
    assert "sampling counters" not in piped.stderr


def test_remediate_confirms_and_comments_out_trade_offs(tmp_path: Path) -> None:
    out = tmp_path / "90-tcpaudit.conf"
    p = run("remediate", str(SNAP), "--nat-idle-timeout", "350", "-o", str(out))
    assert p.returncode == 0, p.stderr
    (line,) = p.stderr.splitlines()
    assert line.startswith(f"tcpaudit: wrote {out}: ") and "nothing was applied" in line
    assert "1 trade-off(s) commented out (net.ipv4.tcp_retries2)" in line
    text = out.read_text().splitlines()
    assert "# net.ipv4.tcp_retries2 = 8" in text
    assert not any(ln.startswith("net.ipv4.tcp_retries2") for ln in text)
    assert "net.ipv4.tcp_tw_recycle = 0" in text  # a plain fix stays active
    active = len([ln for ln in text if ln and not ln.startswith("#")])
    assert f"{active} active setting(s)" in line
