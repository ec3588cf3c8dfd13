"""SYS002: a configured value is not valid for the key (type, range, or a trailing comment)."""

from tcpaudit.lint.model import assignments_of
from tcpaudit.lint.values import check_value, presence
from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta


class InvalidValue(Rule):
    meta = RuleMeta(
        id="SYS002",
        title="sysctl value is invalid for the key: the kernel rejects it",
        severity=Severity.high,
        applies_to=["config"],
        summary=(
            "The value written for a sysctl is not something the kernel accepts for that key (not a number, out "
            "of range, the wrong number of fields, or a trailing comment that became part of the value), so the "
            "write fails and the kernel keeps its previous value."
        ),
        mechanism=[
            "sysctl.conf(5) and sysctl.d(5) know only whole-line comments: a line whose first non-blank "
            "character is '#' or ';'. Everything after '=' (blanks trimmed) is the value.",
            "So `net.ipv4.tcp_keepalive_time = 300 # five minutes` writes the string '300 # five minutes' to "
            "/proc/sys/net/ipv4/tcp_keepalive_time; quotes are written literally in the same way.",
            "Integer sysctls parse the text with proc_dointvec and friends, which reject anything that is not a "
            "list of integers, and ranged ones (proc_dointvec_minmax) reject values outside their bounds, with "
            "EINVAL; ip_local_port_range also rejects a low port above the high one.",
            "The write fails, sysctl prints an error that nobody reads at boot, and the kernel keeps the default "
            "(or the value from an earlier file), while the configuration claims otherwise.",
            "In shell scripts and container commands an unquoted value with blanks is split into separate "
            "arguments: `sysctl -w net.ipv4.ip_local_port_range=32768 60999` writes only '32768'.",
        ],
        when_it_matters=(
            "Always: the setting the author relied on is not in effect. Typical victims are keepalive and "
            "conntrack timeouts written with an explanatory comment at the end of the line."
        ),
        remediation=(
            "Put comments on their own line, remove quotes around values in sysctl.conf files, quote values "
            "with blanks in shell commands (`sysctl -w 'key=a b'`), and keep the value within the key's range."
        ),
        references=[
            Reference(
                title="sysctl.conf(5): comment lines start with '#' or ';'",
                url="https://man7.org/linux/man-pages/man5/sysctl.conf.5.html",
            ),
            Reference(
                title="sysctl.d(5): configuration format",
                url="https://www.freedesktop.org/software/systemd/man/latest/sysctl.d.html",
            ),
            Reference(
                title="Linux kernel: kernel/sysctl.c (proc_dointvec, proc_dointvec_minmax)",
                url="https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/tree/kernel/sysctl.c",
            ),
            Reference(
                title="Linux kernel documentation: ip-sysctl (types and ranges of the net.ipv4 keys)",
                url="https://docs.kernel.org/networking/ip-sysctl.html",
            ),
        ],
    )

    def check(self, f: Facts):
        items = [a for a in assignments_of(f) if a.value is not None and not a.is_glob and not a.templated]
        if not items:
            return self.na("the configuration sets no sysctls with a literal value")
        out = []
        for a in items:
            if presence(f.kdb, f.release, a.key) is False:
                continue  # SYS001 reports it
            vc = check_value(a, f.kdb, f.release)
            ev = {"key": a.key, "value": a.value, "written_as": a.syntax}
            if a.note:  # the shell split the value: that is the finding, not the fragment that was written
                out.append(
                    self.finding(
                        f,
                        keys=[a.key],
                        location=a.location,
                        severity=Severity.medium,
                        evidence={**ev, "problem": a.note},
                        explanation=(
                            f"{a.key}: {a.note}. The key does not get the value the line appears to set "
                            "(at best only its first field changes)."
                        ),
                    )
                )
                continue
            if vc.status == "invalid":
                if vc.comment is not None:
                    text = (
                        f"{a.key} is set to {a.value!r}: sysctl files have no trailing comments, so the text "
                        f"from {vc.comment[:1]!r} on is part of the value and the kernel rejects it "
                        "(EINVAL); the key keeps its previous value."
                    )
                    if "tcpaudit:" in vc.comment:
                        text += " (A same-line `tcpaudit: ignore` comment does this too: put it on the line before.)"
                    ev["comment"] = vc.comment
                elif vc.quoted:
                    text = (
                        f"{a.key} is set to {a.value!r}: sysctl files write quotes literally, so the kernel "
                        "receives them and rejects the value (EINVAL); the key keeps its previous value."
                    )
                else:
                    text = (
                        f"{a.key} = {a.value!r} is not accepted by the kernel ({vc.reason}); the write fails "
                        "with EINVAL and the key keeps its previous value."
                    )
                ev["reason"] = vc.reason
                out.append(self.finding(f, keys=[a.key], location=a.location, evidence=ev, explanation=text))
            elif vc.comment is not None:
                ev["comment"] = vc.comment
                out.append(
                    self.finding(
                        f,
                        keys=[a.key],
                        location=a.location,
                        evidence=ev,
                        severity=Severity.low,
                        explanation=(
                            f"{a.key} is set to {a.value!r}: sysctl files have no trailing comments, so the "
                            f"comment {vc.comment[:40]!r} becomes part of the string value the kernel stores."
                        ),
                    )
                )
        return out or None
