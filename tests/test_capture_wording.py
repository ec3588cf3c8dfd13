"""Findings on a `sysctl -a` capture deployed as a config file say "captured value", never "set in file:line"."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcpaudit.audit import AuditOptions
from tcpaudit.lint.files import parse_text
from tcpaudit.lint.run import lint_unit

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = sorted((ROOT / "fixtures/corpus/sysctl-dump").glob("*sysctl-a*.txt"))


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_capture_findings_say_captured_value(path: Path) -> None:
    (unit,) = parse_text(path.read_text(), str(path))
    assert unit.kernel_hint, "the fixture is a capture (kernel.osrelease)"
    target = lint_unit(unit, AuditOptions())
    texts = [f.explanation for f in target.findings]
    assert not [t for t in texts if "set in " in t], texts


def test_a_config_file_still_says_set_in(tmp_path: Path) -> None:
    conf = tmp_path / "99-net.conf"
    conf.write_text("net.core.somaxconn = 128\n")
    (unit,) = parse_text(conf.read_text(), str(conf))
    target = lint_unit(unit, AuditOptions(), kernel="4.18.0")
    assert any("set in " in f.explanation for f in target.findings if f.rule == "TCP006")


def test_the_same_values_as_a_capture_say_captured(tmp_path: Path) -> None:
    cap = tmp_path / "sysctl-a.txt"
    cap.write_text("kernel.osrelease = 4.18.0-80.el8.x86_64\nnet.core.somaxconn = 128\n")
    (unit,) = parse_text(cap.read_text(), str(cap))
    target = lint_unit(unit, AuditOptions())
    (f,) = [f for f in target.findings if f.rule == "TCP006"]
    assert f"captured value in {cap}:2" in f.explanation
