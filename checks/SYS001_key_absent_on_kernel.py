"""SYS001: a configured sysctl does not exist on the target kernel."""

from tcpaudit.kernel.keys import key_status
from tcpaudit.lint.model import assignments_of
from tcpaudit.lint.values import lifetime, presence
from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta

_EFFECT = {
    "sysctl.conf": (
        '`sysctl --system` (and systemd-sysctl at boot) reports "cannot stat /proc/sys/{path}: No '
        'such file or directory" and the intended setting silently does not apply'
    ),
    "sysctl -w": '`sysctl -w` fails with "cannot stat /proc/sys/{path}" and the intended setting does not apply',
    "kubernetes securityContext.sysctls": (
        "the container runtime cannot write /proc/sys/{path} when it creates the pod sandbox, so the pod fails to start"
    ),
    "tuned": "tuned logs an error for it and the intended setting does not apply",
}
_DEFAULT_EFFECT = "writing /proc/sys/{path} fails and the intended setting does not apply"
# A removed key whose written value is the behaviour every kernel without it has: only dead configuration.
_VALUE_IS_ABSENT_BEHAVIOUR = {"net.ipv4.tcp_tw_recycle": "0"}


class KeyAbsentOnKernel(Rule):
    meta = RuleMeta(
        id="SYS001",
        title="sysctl key does not exist on the target kernel",
        severity=Severity.high,
        applies_to=["config"],
        summary=(
            "The configuration sets a sysctl that the target kernel does not have (removed, not yet added, or "
            "misspelled), so the write fails at boot and the setting the author intended never applies. "
            "Existence is judged from the knowledge base and, for other keys, from the key index "
            "(kernel_db/keys, generated from real kernels' name lists); a key the index cannot vouch for is "
            "reported as unknown (not verified), never as a pass."
        ),
        mechanism=[
            "Every sysctl key is a file under /proc/sys that the running kernel creates; keys appear and "
            "disappear between releases (tcp_tw_recycle was removed in 4.12, nf_conntrack_helper in 6.0).",
            "At boot, systemd-sysctl or `sysctl --system` writes each key of /etc/sysctl.d, /run/sysctl.d, "
            "/usr/local/lib/sysctl.d, /usr/lib/sysctl.d, /lib/sysctl.d and /etc/sysctl.conf in turn.",
            "For a key the kernel does not have, the write fails with ENOENT ('cannot stat /proc/sys/...'); "
            "the error goes to the journal and boot continues, so nobody sees it.",
            "The system runs with the kernel default while the file says otherwise: whoever reads the "
            "configuration to debug a problem is misled, and a setting that was meant to protect the host "
            "(or to break it, like tcp_tw_recycle) silently does nothing.",
            "A leading '-' on the line (sysctl.d) tells sysctl to ignore the failure: the author expected the "
            "key to be missing on some kernels, so it is only dead configuration there (severity low). So is "
            "tcp_tw_recycle = 0 on a kernel without the key: the kernel behaves exactly as the file asks.",
        ],
        when_it_matters=(
            "Always for config that ships to a fleet: images and configuration management outlive the kernel "
            "they were written for. Say --kernel RELEASE to lint for the kernel you actually run."
        ),
        remediation=(
            "Remove the key, or move it to a file that is only installed on kernels that have it; prefix the "
            "line with '-' if it must stay for older kernels. Check the spelling against `sysctl -a` on the "
            "target kernel."
        ),
        references=[
            Reference(
                title="sysctl.d(5): configuration directories, precedence and the '-' prefix",
                url="https://www.freedesktop.org/software/systemd/man/latest/sysctl.d.html",
            ),
            Reference(
                title="sysctl(8) (procps-ng): --system and the order files are applied in",
                url="https://man7.org/linux/man-pages/man8/sysctl.8.html",
            ),
            Reference(
                title="tcp: remove tcp_tw_recycle (Linux 4.12, commit 4396e46187ca)",
                url="https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/commit/?id=4396e46187ca5070219b81773c4e65088dac50cc",
            ),
            Reference(
                title="Linux kernel documentation: /proc/sys/net/ipv4 (ip-sysctl)",
                url="https://docs.kernel.org/networking/ip-sysctl.html",
            ),
        ],
    )

    def check(self, f: Facts):
        if f.kdb is None or f.release is None:
            return self.unknown("the kernel knowledge base or the target kernel release is unavailable")
        items = [a for a in assignments_of(f) if a.value is not None and not a.is_glob]
        if not items:
            return self.na("the configuration sets no sysctls")
        capture = "kernel.osrelease" in f.configured  # a `sysctl -a` capture lists what its kernel has
        groups: dict[tuple[str, str], list] = {}
        for a in items:
            groups.setdefault((a.key, a.location.file), []).append(a)
        out = []
        unverified: list[str] = []
        release = f.snapshot.kernel.release
        for (key, _file), group in groups.items():
            known = presence(f.kdb, f.release, key)
            if known is True:
                continue
            nearest = None
            index_reason = ""
            if known is None:
                st = key_status(key, f.release)
                if st.status == "exists" or capture:
                    continue
                if st.status == "unknown":
                    if key not in unverified:
                        unverified.append(key)
                    continue
                nearest, index_reason = st.nearest, st.reason
            out.append(self._absent(f, key, group, release, nearest, index_reason))
        if out:
            return out
        if unverified:
            shown = ", ".join(unverified[:8]) + (f" and {len(unverified) - 8} more" if len(unverified) > 8 else "")
            return self.unknown(
                f"unknown key(s), not verified for Linux {release}: {shown} (neither the knowledge base nor the key "
                "index can say whether the kernel has them; check with `sysctl -a` on the target)"
            )
        return None

    def _absent(self, f: Facts, key: str, group: list, release: str, nearest: str | None, index_reason: str):
        first = group[0]
        ignored = all(a.ignore_errors for a in group)
        life = lifetime(f.kdb, f.release, key)
        path = key.replace(".", "/")
        effect = _EFFECT.get(first.syntax, _DEFAULT_EFFECT).format(path=path)
        why = life or index_reason
        text = f"{key} does not exist on Linux {release}" + (f" ({why})" if why else "") + f"; {effect}."
        if nearest:
            text += f" The nearest real key is {nearest}: did you mean `{nearest} = {first.value.strip()}`?"
        if ignored:
            text += (
                " The '-' prefix tells sysctl to ignore that failure, so nothing is reported: on this "
                "kernel the line is dead configuration."
            )
        as_absent = _VALUE_IS_ABSENT_BEHAVIOUR.get(key)
        harmless = as_absent is not None and all((a.value or "").strip() == as_absent for a in group)
        if harmless:
            text += (
                f" {key} = {as_absent} asks for exactly what a kernel without the key does, so nothing is lost: "
                "only the boot-time error and the dead line remain."
            )
        ev = {
            "key": key,
            "kernel": release,
            "value": first.value,
            "set_at": [a.where for a in group],
            "ignore_errors": ignored,
        }
        if life:
            ev["knowledge_base"] = life
        elif index_reason:
            ev["key_index"] = index_reason
        remediation = None
        fix: dict[str, str] = {}
        if nearest:
            ev["nearest_key"] = nearest
            fix = {nearest: first.value.strip()}
            remediation = (
                f"Correct the name: `{nearest} = {first.value.strip()}` (check it with `sysctl {nearest}` on the "
                "target kernel), or remove the line."
            )
        return self.finding(
            f,
            keys=[key],
            location=first.location,
            evidence=ev,
            explanation=text,
            severity=Severity.low if ignored or harmless else Severity.high,
            remediation=remediation,
            fix=fix,
        )
