"""One parametrised runner for every rule case in fixtures/rules/, plus the meta-tests."""

from __future__ import annotations

from collections import defaultdict

import pytest

from tcpaudit.model import Outcome
from tcpaudit.rules.engine import catalogue, run_rules

from .rulecases import CASE_DIR, build_case, load_cases

CASES = load_cases()
SEEDS = ["000", "001", "002", "003", "004"]


def _matches(expected, actual) -> bool:  # type: ignore[no-untyped-def]
    try:
        _subset(expected, actual)
    except AssertionError:
        return False
    return True


def _subset(expected, actual, path="evidence"):  # type: ignore[no-untyped-def]
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected a mapping, got {actual!r}"
        for k, v in expected.items():
            assert k in actual, f"{path}.{k} missing; evidence was {actual!r}"
            _subset(v, actual[k], f"{path}.{k}")
    elif isinstance(expected, list) and expected and all(isinstance(e, dict) for e in expected):
        # a list of records: each expected record is a subset of some actual one (order-free)
        assert isinstance(actual, list), f"{path}: expected a list, got {actual!r}"
        for i, e in enumerate(expected):
            assert any(_matches(e, a) for a in actual), f"{path}[{i}]: no record matches {e!r} in {actual!r}"
    else:
        assert actual == expected, f"{path}: expected {expected!r}, got {actual!r}"


@pytest.mark.parametrize("rule,name,case", CASES, ids=[f"{r}-{n}" for r, n, _ in CASES])
def test_rule_case(rule: str, name: str, case: dict) -> None:
    rules = [r for r in catalogue() if r.meta.id == rule]
    assert rules, f"no rule {rule} in the catalogue"
    facts = build_case(case)
    findings, results = run_rules(facts, "case", rules=rules)
    (result,) = results
    expect = case["expect"]
    assert result.outcome is not Outcome.error, f"rule crashed: {result.reason}"
    mine = [f for f in findings if f.rule == rule]
    if expect == "fail":
        assert result.outcome is Outcome.fail, f"expected a finding, got {result.outcome.value} ({result.reason})"
        worst = max(mine, key=lambda f: f.severity.rank)
        if "severity" in case:
            assert worst.severity.value == case["severity"], worst.explanation
        if "evidence" in case:
            _subset(case["evidence"], worst.evidence)
        for text in case.get("explanation_contains", []):
            assert text in worst.explanation, f"{text!r} not in {worst.explanation!r}"
        for text in case.get("context_contains", []):
            assert any(text in c for c in worst.context), f"{text!r} not in the context {worst.context!r}"
        for f in mine:
            assert f.keys, "every finding names the sysctls involved"
            # from a /proc/sys top directory: net.ipv4.tcp_sack, net.nf_conntrack_max, vm.drop_caches
            assert all(
                "." in k
                and k.split(".")[0] in {"abi", "crypto", "debug", "dev", "fs", "kernel", "net", "sunrpc", "user", "vm"}
                for k in f.keys
            ), f"keys must be fully qualified: {f.keys}"
            assert len(f.explanation) > 60, "the explanation states the mechanism"
            assert f.remediation
    elif expect == "pass":
        assert result.outcome is Outcome.passed, f"expected pass, got {result.outcome.value}: " + "; ".join(
            f.explanation for f in mine
        )
    elif expect == "not_applicable":
        assert result.outcome is Outcome.not_applicable, f"expected not_applicable, got {result.outcome.value}"
        for text in case.get("reason_contains", []):
            assert text in result.reason, f"{text!r} not in {result.reason!r}"
    elif expect == "unknown":
        assert result.outcome is Outcome.unknown, f"expected unknown, got {result.outcome.value} ({result.reason})"
        for text in case.get("reason_contains", []):
            assert text in result.reason, f"{text!r} not in {result.reason!r}"
    else:
        pytest.fail(f"bad expect {expect!r}")


def test_every_rule_has_firing_and_non_firing_cases() -> None:
    seen: dict[str, set[str]] = defaultdict(set)
    for rule, _, case in CASES:
        seen[rule].add(case["expect"])
    missing = []
    for r in catalogue():
        have = seen.get(r.meta.id, set())
        if "fail" not in have or not have & {"pass", "not_applicable"}:
            missing.append(f"{r.meta.id} (has {sorted(have) or 'no cases'})")
        if "pass" not in have:
            missing.append(f"{r.meta.id} lacks a non-firing (pass) case")
    assert not missing, f"rules without firing and non-firing cases in {CASE_DIR}: {missing}"


def test_every_seed_failure_is_reproduced() -> None:
    cited = {str(case["seed"]).zfill(3) for _, _, case in CASES if "seed" in case}
    assert set(SEEDS) <= cited, f"seeds without a reproducing rule case: {sorted(set(SEEDS) - cited)}"
