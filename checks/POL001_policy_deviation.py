"""POL001: a sysctl differs from the value the fleet's policy declares for it."""

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta
from tcpaudit.rules.whatif import affected_rules, describe

# Pod manifests and compose files set sysctls of a container's network namespace, not of the host.
_NAMESPACE_SYNTAX = frozenset({"kubernetes", "docker-compose", "sysctls"})


def target_scope(f: Facts) -> str:
    """host: the host itself (its own network namespace, or its boot config); namespaces: any other namespace."""
    if f.kind == "config":
        syntaxes = {a.syntax for a in getattr(f, "assignments", [])}
        return "namespaces" if syntaxes and syntaxes <= _NAMESPACE_SYNTAX else "host"
    ns = f.snapshot.netns
    return "namespaces" if ns is not None and not ns.is_host else "host"


class PolicyDeviation(Rule):
    meta = RuleMeta(
        id="POL001",
        title="sysctl deviates from the declared policy",
        severity=Severity.medium,
        summary=(
            "The policy (`[policy]` in .tcpaudit.toml or --policy FILE) declares the value or bounds a sysctl must "
            "have on this target, and the target has another value. One finding per deviating key, with the "
            "declared value, the actual one, the policy's reason and the severity the policy gives."
        ),
        mechanism=[
            "A fleet standardises settings it has learned it needs (a keepalive below the load balancer's idle "
            "timeout, a conntrack table sized for the traffic, a port range clear of the listeners) and writes "
            "them down with the reason.",
            "A host that was built before the standard, set by hand, or reverted by a package update or a reboot "
            "runs with another value. Majority drift finds it only when most hosts of its group are right and the "
            "group has three hosts or more; the policy says what right is for a single host.",
            "The value is compared as the kernel reads it: numbers as numbers (leading zeros as octal, 0x as hex, "
            "any blanks between vector elements), per element for vectors such as ip_local_port_range.",
            "A key the policy names that does not exist on this kernel is itself reported: an entry that can never "
            "match would otherwise look like compliance.",
        ],
        when_it_matters=(
            "Wherever a policy is given: the deviation carries the policy's own severity, so a team decides which "
            "standards gate a deploy."
        ),
        remediation=(
            "Set the key to the declared value in a sysctl.d file and apply it (`sysctl --system`), or change the "
            "policy if the standard itself is wrong. The finding's fix names a value that meets the declaration."
        ),
        references=[
            Reference(
                title="sysctl.d(5): configure kernel parameters at boot",
                url="https://man7.org/linux/man-pages/man5/sysctl.d.5.html",
            ),
            Reference(
                title="Linux kernel: Documentation/admin-guide/sysctl/",
                url="https://docs.kernel.org/admin-guide/sysctl/index.html",
            ),
        ],
    )

    def check(self, f: Facts):
        if f.policy is None:
            return self.na("no policy given (--policy FILE or [policy] in .tcpaudit.toml)")
        scope = target_scope(f)
        entries = f.policy.for_target(f.group, scope)
        if not entries:
            where = f"group {f.group}, " if f.group else ""
            return self.na(f"the policy declares nothing for this target ({where}scope {scope})")
        out = []
        unknown = []
        judged = 0
        for key, e in sorted(entries.items()):
            v = f.value(key)
            if f.kind == "config" and v.origin != "config":
                continue  # a config file judged only on what it sets; another file may set the rest
            if v.origin == "absent":
                out.append(
                    self.finding(
                        f,
                        keys=[key],
                        severity=e.severity,
                        evidence={
                            "key": key,
                            "declared": e.expect.declared,
                            "actual": None,
                            "reason": e.reason,
                            "policy_severity": e.severity.value,
                            "policy_error": True,
                        },
                        explanation=(
                            f"Policy error: the policy declares {key} {e.expect.declared} ({e.reason}), but "
                            f"{f.absent_reason(key)}, so the entry can never be met here. Fix the policy (scope, "
                            "group or key name) or the kernel."
                        ),
                        remediation="Correct the policy entry: the key name, its scope or its group.",
                    )
                )
                continue
            if v.raw is None:
                unknown.append(key)
                continue
            judged += 1
            if e.expect.check(v.raw):
                continue
            target = e.expect.satisfying(v.raw)
            affected = affected_rules(f, {key: target}) if target is not None else []
            also = describe(affected, "with the policy value")
            where = f" ({v.where()})" if v.origin != "host" else ""
            out.append(
                self.finding(
                    f,
                    keys=[key],
                    severity=e.severity,
                    evidence={
                        "key": key,
                        "declared": e.expect.declared,
                        "actual": v.raw,
                        "reason": e.reason,
                        "policy_severity": e.severity.value,
                        "scope": e.scope,
                        **({"group": e.group} if e.group else {}),
                        "also_triggers": [a["rule"] for a in affected if a["now"]],
                        "affected_rules": affected,
                    },
                    explanation=(
                        f"{key} is {v.raw}{where}; the policy declares {e.expect.declared} "
                        f"({'group ' + e.group + ': ' if e.group else ''}{e.reason})."
                        + (f" Catalogue rules on this key: {also}." if also else "")
                    ),
                    fix={key: target} if target is not None else None,
                )
            )
        if out:
            return out
        if unknown and not judged:
            return self.unknown(f"value not read on this target: {', '.join(unknown)}")
        return None
