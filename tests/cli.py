"""Run the real CLI in a subprocess, the way users do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run(
    *args: str,
    input: str | None = None,
    timeout: float = 120,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    prefix: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """`prefix`: a command the CLI runs under, e.g. ("unshare", "--net") for a namespace of the test's own."""
    e = {**os.environ, **(env or {})}
    e.pop("TCPAUDIT_DEBUG", None)
    return subprocess.run(
        [*prefix, sys.executable, "-m", "tcpaudit", *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=timeout,
        cwd=cwd or ROOT,
        env=e,
    )


def run_json(*args: str, **kw: Any) -> tuple[int, dict[str, Any]]:
    p = run(*args, "--format", "json", **kw)
    assert p.returncode in (0, 1), f"exit {p.returncode}: {p.stderr}"
    return p.returncode, json.loads(p.stdout)
