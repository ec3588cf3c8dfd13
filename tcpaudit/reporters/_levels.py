"""The one severity mapping every reporter uses (table, SARIF, JUnit, Markdown)."""

from __future__ import annotations

from ..model import Severity

ORDER: tuple[str, ...] = ("info", "low", "medium", "high", "critical")

# SARIF result.level: error fails most code-scanning gates, warning and note do not.
_SARIF_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
# GitHub code scanning's security-severity scale: >= 9.0 critical, 7.0-8.9 high, 4.0-6.9 medium, 0.1-3.9 low.
_SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "0.0"}
_LABEL = {"critical": "CRITICAL", "high": "HIGH", "medium": "MEDIUM", "low": "LOW", "info": "INFO"}
_BADGE = {"critical": "🟥", "high": "🟧", "medium": "🟨", "low": "🟦", "info": "⬜"}


def _name(sev: Severity | str) -> str:
    return sev.value if isinstance(sev, Severity) else str(sev)


def rank(sev: Severity | str) -> int:
    """0 (info) .. 4 (critical); -1 for anything else."""
    name = _name(sev)
    return ORDER.index(name) if name in ORDER else -1


def sarif_level(sev: Severity | str) -> str:
    return _SARIF_LEVEL.get(_name(sev), "warning")


def security_severity(sev: Severity | str) -> str:
    return _SECURITY_SEVERITY.get(_name(sev), "0.0")


def label(sev: Severity | str) -> str:
    """Upper-case name for terminals and JUnit failure types."""
    return _LABEL.get(_name(sev), _name(sev).upper())


def badge(sev: Severity | str) -> str:
    """A colour square for Markdown, next to the name (never instead of it)."""
    return _BADGE.get(_name(sev), "")


def by_severity_desc(names: list[str]) -> list[str]:
    return sorted(names, key=lambda n: -rank(n))
