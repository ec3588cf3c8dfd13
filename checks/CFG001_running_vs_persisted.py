"""CFG001: the running value of a sysctl is not what the host's configuration gives it at the next boot."""

from tcpaudit.kernel.runtime_set import host_kinds, runtime_reason
from tcpaudit.lint.values import lifetime
from tcpaudit.model import Finding, Severity
from tcpaudit.policy import same_value
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta
from tcpaudit.rules.whatif import affected_rules, describe
from tcpaudit.snapshot import PersistedConfig

_GLOB = set("*?[")


def _where(file: str, line: int | None) -> str:
    return f"{file}:{line}" if line else file


class RunningVsPersisted(Rule):
    meta = RuleMeta(
        id="CFG001",
        title="running sysctl value differs from the persisted configuration",
        severity=Severity.medium,
        applies_to=["host"],
        summary=(
            "The host's sysctl.d/sysctl.conf files (read in `sysctl --system` order) and the running kernel "
            "disagree: a value set live that reverts at the next reboot, a persisted value that is not in effect "
            "(not applied yet, or refused by the kernel), or a persisted value overridden by a later file."
        ),
        mechanism=[
            "`sysctl -w` and writes to /proc/sys change the running kernel only. At the next boot systemd-sysctl "
            "(or `sysctl --system`) applies the files again, and a fix that was never written to a file is gone: "
            "the problem it fixed comes back after a reboot, often months later.",
            "A file that was changed but never applied (no `sysctl --system` since) describes a state the host is "
            "not in; the change takes effect, untested, at the next reboot.",
            "The kernel refuses some persisted values: a key that does not exist on this kernel (removed, not yet "
            "added, or a module such as nf_conntrack not loaded when the files were applied at boot) or a value "
            "outside the key's range (EINVAL). sysctl logs the error at boot and the default stays.",
            "Files are applied in order and the last assignment wins: a value in an earlier file that a later file "
            "(or /etc/sysctl.conf, applied last) overrides never takes effect, whatever its author intended.",
            "Values are compared as the kernel stores them: numbers as numbers (a leading 0 is octal, 0x hex, as "
            "proc_get_long reads them), any blanks between vector elements. Keys the kernel or a runtime sets on "
            "purpose (conntrack counts, ip_forward on a container or Kubernetes host, kube-proxy's conntrack "
            "settings) are listed with the reason in kernel_db/runtime_set.toml and not reported.",
        ],
        when_it_matters=(
            "Every host that is ever rebooted: the running state is what is audited today, the persisted one is "
            "what the host will run after its next kernel update."
        ),
        remediation=(
            "Write the intended value to one file in /etc/sysctl.d (a name that sorts after the files it must "
            "override) and apply it with `sysctl --system`; remove or fix the lines the kernel refuses, and the "
            "overridden ones, so the files say what the host runs."
        ),
        references=[
            Reference(
                title="sysctl.d(5): configure kernel parameters at boot (order and precedence)",
                url="https://man7.org/linux/man-pages/man5/sysctl.d.5.html",
            ),
            Reference(title="sysctl(8): --system", url="https://man7.org/linux/man-pages/man8/sysctl.8.html"),
            Reference(
                title="systemd-sysctl.service(8)",
                url="https://www.freedesktop.org/software/systemd/man/latest/systemd-sysctl.service.html",
            ),
        ],
    )

    def check(self, f: Facts):
        snap = f.snapshot
        if snap.netns is not None and not snap.netns.is_host:
            return self.na("the persisted configuration is applied in the host's initial network namespace")
        p = snap.persisted
        if p is None:
            return self.unknown("the host's sysctl configuration files were not read (snapshot without them)")
        kinds = host_kinds(snap)
        out = []
        exempt: dict[str, str] = {}
        for key, s in sorted(p.settings.items()):
            if _GLOB & set(key):
                continue
            has = snap.has_sysctl(key)
            if has is None:
                continue  # a tree that is not collected (kernel.*, vm.*): nothing to compare with
            where = _where(s.file, s.line)
            fact = f.kdb.sysctl(key) if f.kdb is not None else None
            if has is False:
                if s.ignore_errors:
                    continue  # `-key = ...`: written to be skipped where the key does not exist
                out.append(self._refused(f, key, s.value, where, self._absent_why(f, key)))
                continue
            running = snap.sysctls[key]
            refused = fact.validate_value(s.value) if fact is not None else None
            if refused:
                out.append(self._refused(f, key, s.value, where, refused, running))
            elif not same_value(s.value, running):
                why = runtime_reason(key, kinds)
                if why:
                    exempt[key] = why
                else:
                    out.append(self._differs(f, key, s.value, where, running))
            for old in s.shadowed:
                if not same_value(old.value, s.value):
                    out.append(self._shadowed(f, key, old.value, _where(old.file, old.line), s.value, where))
        out += self._live_only(f, p, kinds, exempt)
        if out:
            return out
        if not p.complete:
            return self.unknown("part of the sysctl configuration could not be read (see gaps)")
        return None

    # ---- the four kinds -------------------------------------------------------------------------------
    def _absent_why(self, f: Facts, key: str) -> str:
        life = lifetime(f.kdb, f.release, key) if f.kdb is not None else ""
        if life:
            return f"{key} does not exist on this kernel ({life})"
        if key.startswith(("net.netfilter.", "net.nf_conntrack")) and not f.snapshot.conntrack.present:
            return (
                f"{key} does not exist now: the nf_conntrack module is not loaded (at boot the files are often "
                "applied before the module loads, so the value is lost even when it is loaded later)"
            )
        if key.startswith(("net.ipv4.conf.", "net.ipv6.conf.", "net.ipv4.neigh.", "net.ipv6.neigh.")):
            return f"{key} does not exist now: the interface it names is not present"
        if f.hidden_by_netns(key):
            return f"{key} is not visible in this network namespace (a global sysctl): audit the host itself"
        if key.startswith("net.bridge."):
            return f"{key} does not exist now: the br_netfilter module is not loaded"
        return f"{key} does not exist on this kernel (or its module is not loaded)"

    def _refused(self, f: Facts, key: str, value: str, where: str, why: str, running: str | None = None):
        return self.finding(
            f,
            keys=[key],
            evidence={
                "kind": "persisted_refused",
                "key": key,
                "persisted": value,
                "persisted_at": where,
                "running": running,
                "why": why,
            },
            explanation=(
                f"{where} sets {key} = {value}, but the kernel refuses it: {why}. The setting never takes effect "
                f"(sysctl reports an error at boot){'; the running value is ' + running if running else ''}."
            ),
        )

    def _differs(self, f: Facts, key: str, value: str, where: str, running: str):
        affected = affected_rules(f, {key: value})
        also = describe(affected, "after reboot")
        return self.finding(
            f,
            keys=[key],
            evidence={
                "kind": "running_differs",
                "key": key,
                "persisted": value,
                "persisted_at": where,
                "running": running,
                "affected_rules": affected,
            },
            explanation=(
                f"{key} runs with {running} but {where} persists {value}: either it was changed live after boot "
                f"(and reverts to {value} at the next reboot) or the file was changed and never applied (and "
                f"{value} takes effect, untested, at the next reboot)." + (f" {also}." if also else "")
            ),
        )

    def _shadowed(self, f: Facts, key: str, old: str, old_at: str, value: str, where: str):
        return self.finding(
            f,
            keys=[key],
            severity=Severity.low,
            evidence={
                "kind": "persisted_shadowed",
                "key": key,
                "shadowed": old,
                "shadowed_at": old_at,
                "effective": value,
                "effective_at": where,
            },
            explanation=(
                f"{old_at} sets {key} = {old}, but {where} (applied later) sets {value}: the earlier line never "
                "takes effect. Whoever edits the earlier file sees a setting the host does not have."
            ),
        )

    def _live_only(self, f: Facts, p: PersistedConfig, kinds: dict[str, str], exempt: dict[str, str]) -> list[Finding]:
        """Keys no file sets whose running value is not the kernel's default: they revert at reboot. Only keys
        whose default the knowledge base states as a constant for this kernel (not one computed from memory)."""
        if f.kdb is None or f.release is None:
            return []
        out = []
        for key, fact in sorted(f.kdb.sysctls.items()):
            if key in p.settings or key not in f.snapshot.sysctls:
                continue
            entry = fact.default_entry(f.release)
            if entry is None or entry.computed or entry.confidence == "low":
                continue
            running = f.snapshot.sysctls[key]
            if same_value(entry.value, running):
                continue
            if runtime_reason(key, kinds):
                continue
            affected = affected_rules(f, {key: entry.value})
            also = describe(affected, "after reboot")
            out.append(
                self.finding(
                    f,
                    keys=[key],
                    evidence={
                        "kind": "live_only",
                        "key": key,
                        "running": running,
                        "default": entry.value,
                        "affected_rules": affected,
                    },
                    explanation=(
                        f"{key} runs with {running}, but no sysctl configuration file sets it: it was set live "
                        f"and reverts to the kernel default {entry.value} at the next reboot."
                        + (f" {also}." if also else "")
                    ),
                    fix={key: running},
                    remediation=(
                        f"If {running} is intended, persist it: `{key} = {running}` in a file under /etc/sysctl.d; "
                        "otherwise set the default back."
                    ),
                )
            )
        return out
