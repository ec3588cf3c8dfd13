"""SYS006: a persistent config writes a key that is not a setting: a one-shot trigger, no-op or legacy knob."""

from tcpaudit.kernel.effects import KeyEffect
from tcpaudit.lint.model import Assignment, assignments_of
from tcpaudit.lint.values import check_value, presence
from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta

# How often a line of each format is applied: a trigger repeats its action every time.
_APPLIED = {
    "sysctl.conf": (
        "at every boot (systemd-sysctl) and again on every `sysctl --system`, which package "
        "installs that ship sysctl.d files and configuration-management runs start"
    ),
    "tuned": "every time tuned applies the profile (at boot and on every profile switch)",
    "kubernetes securityContext.sysctls": "every time a pod sandbox is created",
    "sysctls": "every time the container starts",
}
_APPLIED_DEFAULT = "every time this configuration is applied (and at every boot if it ends up in sysctl.d)"
IMPERATIVE = "sysctl -w"  # commands in scripts, init containers and notes: run when whoever runs them decides

_SEVERITY = {
    "trigger": Severity.low,
    "no_effect": Severity.info,
    "legacy_name": Severity.info,
    "deprecated_value": Severity.low,
}
_REMEDIATION = {
    "trigger": (
        "Delete the line. If the action is really needed, run it once by hand or from a maintenance job "
        "(for example `sync; sysctl -w vm.drop_caches=1` while investigating), never from sysctl.d, "
        "tuned or configuration management that re-applies it."
    ),
    "no_effect": "Delete the line: the kernel ignores it, and it misleads whoever reads the configuration.",
}


class NotASetting(Rule):
    meta = RuleMeta(
        id="SYS006",
        title="sysctl config writes a one-shot trigger, a no-op or a legacy knob instead of a setting",
        severity=Severity.low,
        applies_to=["config"],
        summary=(
            "The configuration writes a key that the kernel does not keep as a setting: a command that acts on "
            "every write (net.ipv4.route.flush, net.ipv6.route.flush, vm.drop_caches, vm.compact_memory), a "
            "key that no longer does anything (tcp_low_latency), a legacy name (net.nf_conntrack_max) or a "
            "value that re-enables a behaviour disabled for security (nf_conntrack_helper = 1)."
        ),
        mechanism=[
            "Write-only triggers (mode 0200; drop_caches only since 2019) are commands: route.flush flushes "
            "the routing cache and forgets learned path MTUs, drop_caches throws away the page cache and the "
            "dentry/inode caches host-wide, compact_memory migrates the pages of every process. The kernel "
            "performs the action on each write and stores nothing.",
            "sysctl.d and sysctl.conf are re-applied: systemd-sysctl at every boot, `sysctl --system` whenever a "
            "package ships a sysctl.d file or configuration management runs, tuned on every profile switch, a "
            "container runtime on every pod start. A trigger in such a file repeats its action every time, "
            "typically on a busy production host in the middle of a deployment.",
            "Some keys are kept only so that old files still load: net.ipv4.tcp_low_latency stopped doing "
            "anything when TCP prequeue processing was removed (e7942d0633c4), but removing the file would "
            "break old configurations, so writes succeed and change nothing.",
            "net.nf_conntrack_max is the pre-namespace name of net.netfilter.nf_conntrack_max, registered only "
            "in the initial network namespace: on the host it sets the same limit, inside a container's network "
            "namespace it does not exist.",
            "net.netfilter.nf_conntrack_helper = 1 makes the kernel attach conntrack helpers (FTP, SIP, IRC ...) "
            "to every connection on their ports; helpers parse payloads and open expectations the firewall "
            "accepts as RELATED, which is why automatic assignment was disabled by default in 2016 and the "
            "sysctl removed in 6.0.",
        ],
        when_it_matters=(
            "Triggers: on busy hosts, where every re-application of the configuration costs an I/O storm "
            "(drop_caches), latency spikes (compact_memory) or a burst of path-MTU re-discovery (route.flush). "
            "No-ops and legacy names: when someone debugs the host and trusts the file. nf_conntrack_helper = 1: "
            "on firewalls and NAT gateways with helper modules loaded."
        ),
        remediation=(
            "Delete trigger lines and run the action by hand when it is really needed; delete no-op keys; use "
            "net.netfilter.nf_conntrack_max instead of net.nf_conntrack_max; set nf_conntrack_helper = 0 and "
            "attach helpers explicitly in the ruleset (iptables CT --helper, nftables ct helper)."
        ),
        references=[
            Reference(
                title="Linux kernel documentation: /proc/sys/vm (drop_caches, compact_memory)",
                url="https://docs.kernel.org/admin-guide/sysctl/vm.html",
            ),
            Reference(
                title="kernel: sysctl: make drop_caches write-only (commit 204cb79ad42f: 'a one-time command')",
                url="https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/commit/?id=204cb79ad42f015312a5bbd7012d09c93d9b46fb",
            ),
            Reference(
                title="Linux kernel documentation: ip-sysctl (tcp_low_latency: 'no effect anymore')",
                url="https://docs.kernel.org/networking/ip-sysctl.html",
            ),
            Reference(
                title="netfilter: remove nf_conntrack_helper sysctl and modparam toggles (b118509076b3)",
                url="https://lore.kernel.org/all/20220901071238.3044-2-fw@strlen.de/",
            ),
            Reference(
                title="sysctl.d(5): when configuration files are applied",
                url="https://www.freedesktop.org/software/systemd/man/latest/sysctl.d.html",
            ),
        ],
    )

    def check(self, f: Facts):
        items = [a for a in assignments_of(f) if a.value is not None and not a.is_glob]
        if not items:
            return self.na("the configuration sets no sysctls")
        if any(a.key == "kernel.osrelease" for a in items):
            # kernel.osrelease is read-only: only a `sysctl -a` capture lists it (see lint/files.py).
            return self.na(
                "a `sysctl -a` capture records the state of a host (SYS009 reports one installed as configuration)"
            )
        db = f.kdb.effects if f.kdb is not None else None
        if db is None:
            return self.na("the knowledge base (kernel_db/effects.toml) is not loaded")
        groups: dict[tuple[str, str], list[Assignment]] = {}
        for a in items:
            if db.lookup(a.key) is not None:
                groups.setdefault((a.key, a.location.file), []).append(a)
        out = []
        for (key, _file), group in groups.items():
            effect = db.lookup(key)
            assert effect is not None
            if presence(f.kdb, f.release, key) is False:
                continue  # SYS001 reports a key the kernel does not have
            if effect.applies_in(f.release) is not True:
                continue
            acting = [
                a
                for a in group
                if check_value(a, f.kdb, f.release).status != "invalid"  # SYS002: the write fails
                and not (effect.values and a.templated)
                and effect.acts_on(a.value or "")
            ]
            if acting:
                out.append(self._report(f, effect, acting))
        return out or None

    def _report(self, f: Facts, effect: KeyEffect, group: list[Assignment]):
        first, last = group[0], group[-1]
        key, value = effect.name, (last.value or "").strip()
        release = f.snapshot.kernel.release
        # The location field names the first line; name them all when the key is written more than once.
        where = f" ({len(group)} lines: {', '.join(a.where for a in group)})" if len(group) > 1 else ""
        severity = _SEVERITY[effect.kind]
        impact = f" {effect.impact[0].upper()}{effect.impact[1:]}." if effect.impact else ""
        remediation = effect.remediation or _REMEDIATION.get(effect.kind)
        fix: dict[str, str] = {}
        evidence = {
            "key": key,
            "kind": effect.kind,
            "value": value,
            "set_at": [a.where for a in group],
            "written_as": first.syntax,
            "kernel": release,
            "knowledge_base": _cite(effect, f),
        }
        if effect.kind == "trigger":
            if all(a.syntax == IMPERATIVE for a in group):
                severity = Severity.info
                text = (
                    f"`sysctl -w {key}={value}`{where} runs a one-shot action, not a setting: "
                    f"{effect.summary}.{impact} That is fine for a command run on purpose; if this runs at "
                    "every boot, deployment or container start, the action repeats each time."
                )
            else:
                applied = _APPLIED.get(first.syntax, _APPLIED_DEFAULT)
                text = (
                    f"{key} = {value}{where} is not a setting but a one-shot trigger: {effect.summary}."
                    f"{impact} In a persistent configuration it fires {applied}"
                    + (
                        f", {len(group)} times each time since the file writes it {len(group)} times"
                        if len(group) > 1
                        else ""
                    )
                    + ". The kernel keeps no value, so the line configures nothing either."
                )
        elif effect.kind == "no_effect":
            since = effect.range_for(f.release)
            when = f" (since {since.since})" if since is not None else ""
            text = (
                f"{key} = {value}{where} has no effect on Linux {release}{when}: {effect.summary}. The write "
                "succeeds and changes nothing, while the file suggests the host is tuned by it."
            )
            if since is not None:
                evidence["no_effect_since"] = since.since
        elif effect.kind == "legacy_name":
            canonical = effect.canonical or ""
            evidence["canonical"] = canonical
            fix = {canonical: value}
            remediation = (
                f"Write {canonical} = {value} instead of {key}: the same variable under the name that "
                "current kernels, documentation and tools use."
            )
            text = (
                f"{key} = {value}{where} uses a legacy name: {effect.summary}. On the host it sets the "
                f"same variable as {canonical}, which is the name to use."
            )
        else:  # deprecated_value
            fix = {key: effect.fix_value} if effect.fix_value is not None else {}
            text = f"{key} = {value}{where}: {effect.summary}.{impact}"
        return self.finding(
            f,
            keys=[key],
            location=first.location,
            severity=severity,
            evidence=evidence,
            explanation=text,
            remediation=remediation,
            fix=fix,
        )


def _cite(effect: KeyEffect, f: Facts) -> str:
    """`effects.toml: trigger (verified; net/ipv4/route.c @7a0c4c17089a)`, plus the version bound's confidence."""
    src = effect.source
    ref = src.file or src.subject or src.url or ""
    if src.commit:
        ref = f"{ref} @{src.commit[:12]}" if ref and ref != src.subject else f"{src.commit[:12]} ({src.subject})"
    text = f"effects.toml: {effect.kind} ({effect.confidence}; {ref})"
    bound = effect.range_for(f.release)
    if bound is not None:
        text += f"; since {bound.since}: {bound.confidence}"
    return text
