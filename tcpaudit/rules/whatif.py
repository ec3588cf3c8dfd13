"""Which catalogue rules a sysctl change would start or stop: how POL001 and CFG001 name the rules a deviation or a
reboot affects ("NAT001 fires now and stops once the policy value is set").

Rules are pure functions of Facts, so a rule can be asked again on a copy of the facts with some values replaced;
nothing is collected or written.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..model import Finding, Location
from .base import Facts, NotApplicable, Rule, Unknown

# Rules about the difference itself are never asked again (they would answer about themselves).
_SELF = frozenset({"POL001", "CFG001"})


def with_values(f: Facts, changes: dict[str, str | None]) -> Facts:
    """The same facts with `changes` applied (None: the key goes back to unset, i.e. the kernel default)."""
    if f.kind == "config":
        configured = dict(f.configured)
        for k, v in changes.items():
            if v is None:
                configured.pop(k, None)
            else:
                loc = configured[k][1] if k in configured else Location(file="(policy)")
                configured[k] = (v, loc)
        return dataclasses.replace(f, configured=configured)
    sysctls = dict(f.snapshot.sysctls)
    for k, v in changes.items():
        if v is None:
            sysctls.pop(k, None)
        else:
            sysctls[k] = v
    return dataclasses.replace(f, snapshot=f.snapshot.model_copy(update={"sysctls": sysctls}))


def _fires(rule: Rule, f: Facts) -> list[Finding]:
    try:
        out = rule.check(f)
    except Exception:  # noqa: BLE001 - a crash is reported by the engine on the real run, not here
        return []
    if out is None or isinstance(out, (NotApplicable, Unknown)):
        return []
    items = [out] if isinstance(out, Finding) else list(out)
    return [i for i in items if isinstance(i, Finding)]


def affected_rules(f: Facts, changes: dict[str, str | None]) -> list[dict[str, Any]]:
    """[{"rule", "now", "after"}] for every catalogue rule reading one of the changed keys whose verdict differs
    between the facts as they are and with `changes` applied, or that fires in both."""
    from .engine import catalogue

    keys = set(changes)
    changed = with_values(f, changes)
    out = []
    for rule in catalogue():
        if rule.meta.id in _SELF or f.kind not in rule.meta.applies_to or not keys & set(rule.meta.keys):
            continue
        now, after = bool(_fires(rule, f)), bool(_fires(rule, changed))
        if now or after:
            out.append({"rule": rule.meta.id, "now": now, "after": after})
    return out


def describe(affected: list[dict[str, Any]], after: str) -> str:
    """One sentence: 'NAT001 fires now and stops after reboot; TCP005 fires now and still fires after reboot.'"""
    parts = []
    for a in affected:
        if a["now"] and not a["after"]:
            parts.append(f"{a['rule']} fires now and stops {after}")
        elif a["after"] and not a["now"]:
            parts.append(f"{a['rule']} does not fire now but will {after}")
        else:
            parts.append(f"{a['rule']} fires now and still fires {after}")
    return "; ".join(parts)
