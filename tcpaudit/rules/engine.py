"""Load the catalogue from tcpaudit.checks and run it over targets.

Loading fails loudly: an import error, a module without exactly one rule, invalid
metadata or a duplicate id raises RuleLoadError. Running never fails silently: a
rule that raises becomes an `error` finding.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import pkgutil
from collections.abc import Iterable

from pydantic import ValidationError

from ..model import CheckResult, Finding, Outcome, Severity
from .base import Facts, NotApplicable, Rule, RuleMeta, Unknown


class RuleLoadError(Exception):
    pass


def _rules_in(module: object) -> list[type[Rule]]:
    out = []
    for obj in vars(module).values():
        if (
            isinstance(obj, type)
            and issubclass(obj, Rule)
            and obj.__module__ == module.__name__  # type: ignore[attr-defined]
            and "meta" in vars(obj)
        ):
            out.append(obj)
    return out


def load_rules(package: str = "tcpaudit.checks") -> list[Rule]:
    try:
        pkg = importlib.import_module(package)
    except Exception as exc:  # noqa: BLE001
        raise RuleLoadError(f"cannot import rule package {package}: {exc}") from exc
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        modname = f"{package}.{info.name}"
        try:
            module = importlib.import_module(modname)
        except Exception as exc:  # noqa: BLE001
            raise RuleLoadError(f"rule module {modname} failed to import: {type(exc).__name__}: {exc}") from exc
        found = _rules_in(module)
        if len(found) != 1:
            raise RuleLoadError(f"rule module {modname} must define exactly one rule, found {len(found)}")
        cls = found[0]
        meta = vars(cls)["meta"]
        if not isinstance(meta, RuleMeta):
            raise RuleLoadError(f"{modname}: meta must be a RuleMeta")
        try:
            RuleMeta.model_validate(meta.model_dump())
        except ValidationError as exc:
            raise RuleLoadError(f"{modname}: invalid metadata: {exc}") from exc
        if info.name.split("_")[0].upper() != meta.id:
            raise RuleLoadError(f"{modname}: file name must start with the rule id {meta.id}")
        for rid in [meta.id, *meta.aliases]:
            if rid in seen:
                raise RuleLoadError(f"duplicate rule id {rid} in {modname} and {seen[rid]}")
            seen[rid] = modname
        rules.append(cls())
    if not rules:
        raise RuleLoadError(f"no rules found in {package}")
    return rules


@functools.lru_cache(maxsize=1)
def catalogue() -> tuple[Rule, ...]:
    return tuple(load_rules())


def resolve_ids(ids: Iterable[str], rules: Iterable[Rule] | None = None) -> set[str]:
    """Map ids and aliases to current ids."""
    table = {}
    for r in rules or catalogue():
        for rid in [r.meta.id, *r.meta.aliases]:
            table[rid.upper()] = r.meta.id
    return {table.get(i.upper(), i.upper()) for i in ids}


def fingerprint(target: str, finding: Finding) -> str:
    loc = finding.location.file if finding.location else ""
    key = "\x1f".join([finding.rule, target, ",".join(sorted(finding.keys)), loc])
    # surrogatepass: a lone surrogate (from a mangled file name or host name) must fingerprint, not crash
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def run_rules(
    facts: Facts, target_name: str, rules: Iterable[Rule] | None = None, disabled: Iterable[str] = ()
) -> tuple[list[Finding], list[CheckResult]]:
    off = resolve_ids(disabled)
    findings: list[Finding] = []
    results: list[CheckResult] = []
    for rule in rules if rules is not None else catalogue():
        rid = rule.meta.id
        if rid in off:
            results.append(CheckResult(rule=rid, outcome=Outcome.not_applicable, reason="disabled by configuration"))
            continue
        if facts.kind not in rule.meta.applies_to:
            results.append(
                CheckResult(rule=rid, outcome=Outcome.not_applicable, reason=f"not run on {facts.kind} targets")
            )
            continue
        try:
            out = rule.check(facts)
            items = [] if out is None else [out] if isinstance(out, (Finding, NotApplicable, Unknown)) else list(out)
        except Exception as exc:  # noqa: BLE001 - a crashing rule is an error finding, never a pass
            err = Finding(
                rule=rid,
                severity=Severity.high,
                title=rule.meta.title,
                outcome=Outcome.error,
                keys=list(rule.meta.keys),
                evidence={"exception": f"{type(exc).__name__}: {exc}"[:500]},
                explanation=f"rule {rid} crashed, so this target was NOT checked for it; please report this bug",
                remediation="Report the bug; the evidence names the exception.",
                references=[r.url for r in rule.meta.references],
            )
            err.fingerprint = fingerprint(target_name, err)
            findings.append(err)
            results.append(CheckResult(rule=rid, outcome=Outcome.error, reason=err.evidence["exception"]))
            continue
        fired = [i for i in items if isinstance(i, Finding)]
        skipped = [i for i in items if isinstance(i, NotApplicable)]
        unread = [i for i in items if isinstance(i, Unknown)]
        for fnd in fired:
            fnd.fingerprint = fingerprint(target_name, fnd)
        findings.extend(fired)
        if fired:
            results.append(CheckResult(rule=rid, outcome=Outcome.fail))
        elif unread:
            results.append(CheckResult(rule=rid, outcome=Outcome.unknown, reason=unread[0].reason))
        elif skipped:
            results.append(CheckResult(rule=rid, outcome=Outcome.not_applicable, reason=skipped[0].reason))
        else:
            results.append(CheckResult(rule=rid, outcome=Outcome.passed))
    findings.sort(key=lambda x: (-x.severity.rank, x.rule))
    return findings, results
