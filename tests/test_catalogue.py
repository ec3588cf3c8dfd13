"""The catalogue loads loudly, docs/rules/ is generated from it and never stale, and every rule is complete."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tcpaudit.catalogue import render_docs
from tcpaudit.rules.engine import RuleLoadError, catalogue, load_rules

from .cli import run

ROOT = Path(__file__).resolve().parents[1]


def test_docs_rules_are_not_stale() -> None:
    docs = ROOT / "docs" / "rules"
    wanted = render_docs()
    have = {p.name: p.read_text() for p in docs.glob("*.md")} if docs.is_dir() else {}
    stale = sorted(n for n in wanted if have.get(n) != wanted[n]) + sorted(set(have) - set(wanted))
    assert not stale, f"docs/rules is stale ({stale}); regenerate: python -m tcpaudit.catalogue docs/rules"


def test_every_rule_explains_itself() -> None:
    from typer.testing import CliRunner

    from tcpaudit.cli import app

    rules = catalogue()
    first = rules[0].meta
    p = run("explain", first.id)  # once through the real command line, as users run it ...
    assert p.returncode == 0 and first.title in p.stdout and "## Why it fails" in p.stdout
    runner = CliRunner()  # ... and every rule through the same command in this process (no interpreter each)
    for rule in rules:
        m = rule.meta
        assert m.references and all(r.url.startswith("https://") for r in m.references), m.id
        assert len(m.mechanism) >= 2, f"{m.id}: the mechanism, step by step"
        assert all(k.count(".") >= 2 for k in m.keys), m.id
        r = runner.invoke(app, ["explain", m.id])
        assert r.exit_code == 0 and m.title in r.stdout and "## Why it fails" in r.stdout, (m.id, r.output)
        if m.id == first.id:
            assert r.stdout == p.stdout  # in-process and the real command line print the same


def test_rules_command_lists_all(tmp_path: Path) -> None:
    import json

    p = run("rules", "--format", "json")
    assert p.returncode == 0
    assert [r["id"] for r in json.loads(p.stdout)] == [r.meta.id for r in catalogue()]


def _package(tmp_path: Path, files: dict[str, str]) -> str:
    pkg = tmp_path / "fakerules"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name, body in files.items():
        (pkg / name).write_text(textwrap.dedent(body))
    sys.path.insert(0, str(tmp_path))
    return "fakerules"


GOOD = """
from tcpaudit.rules.base import Rule, RuleMeta, Reference
class R(Rule):
    meta = RuleMeta(id="{id}", title="a test rule title", severity="low", summary="a summary long enough",
                    mechanism=["step one"], when_it_matters="whenever it matters, really",
                    remediation="fix it properly somehow", references=[Reference(title="t", url="https://x")])
    def check(self, f):
        return None
"""


@pytest.fixture(autouse=True)
def _clean_modules():  # type: ignore[no-untyped-def]
    yield
    for name in [m for m in sys.modules if m.startswith("fakerules")]:
        del sys.modules[name]
    sys.path[:] = [p for p in sys.path if "pytest" not in p or "fakerules" not in p]


def test_import_error_fails_loudly(tmp_path: Path) -> None:
    pkg = _package(tmp_path, {"TCP901_broken.py": "import does_not_exist\n"})
    with pytest.raises(RuleLoadError, match="TCP901_broken failed to import"):
        load_rules(pkg)


def test_duplicate_ids_fail_loudly(tmp_path: Path) -> None:
    pkg = _package(tmp_path, {"TCP902_a.py": GOOD.format(id="TCP902"), "TCP902_b.py": GOOD.format(id="TCP902")})
    with pytest.raises(RuleLoadError, match="duplicate rule id TCP902"):
        load_rules(pkg)


def test_missing_metadata_fails_loudly(tmp_path: Path) -> None:
    bad = GOOD.format(id="TCP903").replace('summary="a summary long enough",', "")
    pkg = _package(tmp_path, {"TCP903_x.py": bad})
    with pytest.raises(RuleLoadError):
        load_rules(pkg)


def test_a_crashing_rule_is_an_error_finding_not_a_pass(tmp_path: Path) -> None:
    from tcpaudit.context import Context
    from tcpaudit.model import Outcome
    from tcpaudit.rules.base import Facts
    from tcpaudit.rules.engine import run_rules

    from .rulecases import build_case

    crash = GOOD.format(id="TCP904").replace("return None", "raise KeyError('boom')")
    pkg = _package(tmp_path, {"TCP904_crash.py": crash})
    rules = load_rules(pkg)
    facts = build_case({"name": "x"})
    findings, results = run_rules(facts, "t", rules=rules)
    assert results[0].outcome is Outcome.error
    assert findings[0].outcome is Outcome.error and "KeyError" in findings[0].evidence["exception"]
    assert isinstance(facts.context, Context) and isinstance(facts, Facts)
