"""Cross-namespace view of NS001: one entry per kind of lost host tuning, naming every namespace it affects.

NS001 runs per target, like every rule, so a node with 40 pods has 40 NS001 findings; each target keeps
its own (its status, suppressions, exit code and SARIF/JUnit output stay per target). This step adds the
grouped view the reader wants - "these keys, these host values, these 40 namespaces" - to
``report.extra["netns"]["ns001"]`` without removing anything. It reads only the finished report.
"""

from __future__ import annotations

from typing import Any

from .model import Report

RULE = "NS001"


def group_ns001(report: Report) -> list[dict[str, Any]]:
    """Group the report's NS001 findings by (key, host value, namespace value) and store the groups.

    Each group: ``keys``, ``namespaces`` (target names, in report order), ``host_values``, ``ns_values``,
    ``new_netns_gets``, ``kb_sources``, ``findings_there`` (per namespace, the other findings on that target
    that judge one of the keys: what the lost tuning triggers there) and ``own_values`` (per namespace,
    keys it set itself). Groups are ordered by the number of namespaces, largest first.
    """
    groups: dict[tuple[tuple[str, str, str], ...], dict[str, Any]] = {}
    for target in report.targets:
        for finding in target.findings:
            if finding.rule != RULE or finding.suppressed is not None:
                continue
            rows = [r for r in finding.evidence.get("not_inherited", []) if isinstance(r, dict) and "key" in r]
            if not rows:
                continue
            signature = tuple(sorted((str(r["key"]), str(r.get("host")), str(r.get("namespace"))) for r in rows))
            group = groups.get(signature)
            if group is None:
                group = groups[signature] = {
                    "keys": [k for k, _, _ in signature],
                    "namespaces": [],
                    "host_values": {k: h for k, h, _ in signature},
                    "ns_values": {k: n for k, _, n in signature},
                    "new_netns_gets": {str(r["key"]): r.get("new_netns_gets") for r in rows},
                    "kb_sources": {str(r["key"]): r.get("kb_source") for r in rows},
                    "findings_there": {},
                    "own_values": {},
                }
            group["namespaces"].append(target.name)
            keys = set(group["keys"])
            related = sorted({f.rule for f in target.findings if f.rule != RULE and keys & set(f.keys)})
            if related:
                group["findings_there"][target.name] = related
            own = finding.evidence.get("own_values") or []
            if own:
                group["own_values"][target.name] = own
    ordered = sorted(groups.values(), key=lambda g: (-len(g["namespaces"]), g["keys"]))
    report.extra.setdefault("netns", {})["ns001"] = ordered
    return ordered
