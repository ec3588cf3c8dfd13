"""A non-editable install from a wheel works from any directory and ships no top-level `checks`."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    p = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr
    (whl,) = out.glob("tcpaudit-*.whl")
    return whl


def test_wheel_contents(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert "checks" not in tops and "kernel_db" not in tops, tops
    assert any(n.startswith("tcpaudit/checks/TCP001") for n in names)
    assert any(n.startswith("tcpaudit/kernel_db/") and n.endswith(".toml") for n in names)
    assert not any(n.startswith("tests/") for n in names)
    for asset in ("report.html.j2", "report.css", "report.js"):  # --format html
        assert f"tcpaudit/reporters/templates/{asset}" in names


def test_wheel_installs_into_a_fresh_venv_and_runs_anywhere(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    # a venv without pip of its own (ensurepip costs seconds); this interpreter's pip installs into it
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install", "-q"]
        + ["--disable-pip-version-check", str(wheel)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert pip.returncode == 0, pip.stderr
    exe = str(venv / "bin/tcpaudit")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [exe, *args],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=elsewhere,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )

    assert run("--version").returncode == 0
    rules = run("rules", "--format", "json")
    assert rules.returncode == 0, rules.stderr
    assert len(json.loads(rules.stdout)) == len(list((ROOT / "checks").glob("[A-Z]*.py")))
    host = run("host", "--format", "json")
    assert host.returncode in (0, 1), host.stderr
    report = json.loads(host.stdout)
    assert report["targets"][0]["status"] == "ok"
    assert not [c for c in report["targets"][0]["checks"] if c["outcome"] == "error"]
    html = run("host", "--format", "html")
    assert html.returncode in (0, 1) and html.stdout.startswith("<!DOCTYPE html>"), html.stderr
    kernel = run("kernel", "4.9.0", "--format", "json")
    assert kernel.returncode == 0, kernel.stderr
    assert json.loads(kernel.stdout)["sysctls"]["net.ipv4.tcp_tw_recycle"]["present"] is True


def test_ci_constraints_pin_every_dependency_inside_its_range() -> None:
    """constraints/ci.txt (what CI installs) pins every direct dependency, each within pyproject's range."""
    import re

    from packaging.requirements import Requirement

    from tcpaudit._toml import tomllib

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (root / "constraints" / "ci.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    specs = [
        *project["dependencies"],
        *(d for extra in ("test", "lint") for d in project["optional-dependencies"][extra]),
    ]
    for spec in specs:
        req = Requirement(spec)
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in pins, f"{req.name} is not pinned in constraints/ci.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{req.name}=={pins[name]} is outside {req.specifier}"
        )
