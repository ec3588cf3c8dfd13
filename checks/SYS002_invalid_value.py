"""SYS002: a configured value is not valid for the key (type, range, or a trailing comment)."""

import re
from typing import Any

from tcpaudit.lint.model import Assignment, assignments_of
from tcpaudit.lint.values import NAMED_TEXT, ValueCheck, check_value, presence
from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta

POD_SYSCTLS = "kubernetes securityContext.sysctls"  # tcpaudit.lint.structured's syntax for pod sysctls


class InvalidValue(Rule):
    meta = RuleMeta(
        id="SYS002",
        title="sysctl value is rejected by the kernel, or carries text after it that the kernel leaves unread",
        severity=Severity.high,
        applies_to=["config"],
        summary=(
            "The value written for a sysctl is not something the kernel accepts for that key (not a number, out "
            "of range, the wrong number of fields, quotes, an empty value, or a trailing comment on a text key), "
            "so the write fails and the kernel keeps its previous value. A trailing comment after an integer "
            "value is only a style note on current kernels: the number applies."
        ),
        mechanism=[
            "sysctl.conf(5) and sysctl.d(5) know only whole-line comments ('#' or ';' first). procps sysctl and "
            "systemd-sysctl take everything after '=' (blanks trimmed) as the value and write it as it is: "
            "quotes too, and an empty value (procps from 4.0.0 and systemd; procps 3.3.x skips that line with "
            "'invalid syntax, continuing...'). A line without '=' is skipped by both with a warning and the rest "
            "of the file still applies; systemd-sysctl then exits 1.",
            "Integer keys are parsed by __do_proc_dointvec (kernel/sysctl.c): it reads as many numbers as the "
            "key holds, each followed by a blank or the end, and leaves the rest unread, so "
            "`tcp_keepalive_time = 300 # five minutes` sets 300. Text keys (proc_dostring) keep the whole line: "
            "`tcp_congestion_control = reno # c` names no algorithm and is refused.",
            "The unread rest is written again by sysctl's stdio and by systemd; since Linux 4.5 "
            "(kernel.sysctl_writes_strict = 1 by default) that second write at a non-zero position is ignored. "
            "Before 4.5 it is parsed as a new value and fails with EINVAL: the number applied, but the tool "
            "reports an error.",
            "Quotes, non-numbers, out-of-range values (proc_dointvec_minmax) and a number cut off by the comment "
            "before the key's vector is full (`ip_local_port_range = 20000 # c`) fail with EINVAL: sysctl prints "
            "an error nobody reads at boot and the kernel keeps its previous value.",
            "tuned strips inline '#' comments and surrounding double quotes, so `\"1024 65535\"` in a tuned "
            "profile is the range 1024-65535.",
            "In shell scripts and container commands an unquoted value with blanks is split into separate "
            "arguments: `sysctl -w net.ipv4.ip_local_port_range=32768 60999` writes only '32768'.",
        ],
        when_it_matters=(
            "Always when the write fails: the setting the author relied on is not in effect. Typical victims are "
            "quoted values, text keys with a comment, and timeouts written on old kernels with a comment."
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
                title="Linux 41662f5cc553 (v4.5): sysctl: enable strict writes (kernel.sysctl_writes_strict = 1)",
                url="https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/commit/?id=41662f5cc55335807d39404371cfcbb1909304c4",
            ),
            Reference(
                title="procps-ng 6389deca (v4.0.0): sysctl parse_setting_line() (empty values are written)",
                url="https://gitlab.com/procps-ng/procps/-/commit/6389deca5bf667f5fab5912acde78ba8e0febbc7",
            ),
            Reference(
                title="Linux kernel documentation: ip-sysctl (types and ranges of the net.ipv4 keys)",
                url="https://docs.kernel.org/networking/ip-sysctl.html",
            ),
        ],
    )

    def check(self, f: Facts):
        # Pod sysctls are SYS008's: a refused value there means the pod never starts, which is that finding's text.
        items = [
            a
            for a in assignments_of(f)
            if a.value is not None and not a.is_glob and not a.templated and a.syntax != POD_SYSCTLS
        ]
        if not items:
            return self.na("the configuration sets no sysctls with a literal value")
        out = []
        in_effect: dict[str, tuple[str, Any]] = {}  # what earlier lines set, for checks against another key
        for a in items:
            if presence(f.kdb, f.release, a.key) is False:
                continue  # SYS001 reports it
            vc = check_value(a, f.kdb, f.release, in_effect)
            if vc.status != "invalid":
                in_effect[a.key] = (vc.applied or a.value or "", a.location)
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
            judged = _judge(a, vc)
            if judged is None:
                continue
            severity, text, extra = judged
            out.append(
                self.finding(
                    f,
                    keys=[a.key],
                    location=a.location,
                    severity=severity,
                    evidence={**ev, **extra},
                    explanation=text,
                    remediation=_STYLE_FIX if "unread" in extra and severity == Severity.low else None,
                )
            )
        return out or None


def _judge(a: Assignment, vc: ValueCheck) -> tuple[Severity, str, dict[str, str]] | None:
    """(severity, explanation, evidence) for one assignment, or None when the kernel takes it as written."""
    if vc.empty:
        if vc.status == "invalid":
            return (
                Severity.medium,
                f"{a.key} has an empty value. procps sysctl from 4.0.0 and systemd-sysctl write it (an empty "
                "line) and the kernel refuses it for a number (EINVAL: `setting key ...: Invalid argument`, "
                "`Couldn't write '' to ...`, both exit 1); procps 3.3.x skips the line with 'invalid syntax, "
                "continuing...'. Either way the key keeps its previous value.",
                {"reason": vc.reason},
            )
        if vc.status == "ok":
            return (
                Severity.low,
                f"{a.key} has an empty value: sysctl (procps 4.0+) and systemd-sysctl write the empty string, "
                "so the kernel's text value is cleared (procps 3.3.x skips the line instead).",
                {},
            )
        return None
    if vc.status == "invalid":
        extra = {"reason": vc.reason}
        if a.key in NAMED_TEXT:
            text = (
                f"{a.key} is set to {a.value!r}: for a text key the whole rest of the line is the value, quotes "
                "and comment included; no algorithm has that name, so the kernel refuses the write (procps: "
                "`setting key ...: No such file or directory`; systemd-sysctl logs it and goes on) and the key "
                "keeps its previous value."
            )
        elif vc.comment is not None:
            extra["comment"] = vc.comment
            text = (
                f"{a.key} is set to {a.value!r}: sysctl files have no trailing comments, so the text from "
                f"{vc.comment[:1]!r} on reaches the kernel, which rejects the value ({vc.reason}; EINVAL); "
                "the key keeps its previous value."
            )
            if "tcpaudit:" in vc.comment:
                text += " (A same-line `tcpaudit: ignore` comment does this too: put it on the line before.)"
        elif vc.quoted:
            text = (
                f"{a.key} is set to {a.value!r}: sysctl and systemd-sysctl write quotes literally, so the kernel "
                "receives them and rejects the value (EINVAL); the key keeps its previous value. (tuned strips "
                "double quotes; sysctl.conf does not.)"
            )
        else:
            text = (
                f"{a.key} = {a.value!r} is not accepted by the kernel ({vc.reason}); the write fails "
                "with EINVAL and the key keeps its previous value."
            )
        return Severity.high, text, extra
    if vc.remainder is not None and vc.applied is not None:
        extra = {"applied": vc.applied, "unread": vc.remainder}
        if vc.strict_writes:
            return (
                Severity.low,
                f"{a.key} = {a.value!r}: the kernel reads the number(s) {vc.applied!r} and leaves "
                f"{vc.remainder[:40]!r} unread, so {vc.applied} applies; `sysctl -p` prints the line back with "
                "the text and reports no error. Style: sysctl.conf has no trailing comments, put the text on its "
                "own line (before Linux 4.5 the same line makes sysctl report an error).",
                extra,
            )
        if re.match(r"-?\d", vc.remainder):
            return (
                Severity.medium,
                f"{a.key} = {a.value!r}: the kernel stores {vc.applied} and leaves {vc.remainder[:40]!r} unread; "
                "sysctl and systemd-sysctl then write the unread text again, and on this kernel (before 4.5, "
                "kernel.sysctl_writes_strict defaults to 0) that second write is parsed as a new value: the key "
                "ends up with a number from the rest of the line, not the first one.",
                extra,
            )
        return (
            Severity.medium,
            f"{a.key} = {a.value!r}: the kernel stores {vc.applied} and leaves {vc.remainder[:40]!r} unread; "
            "sysctl and systemd-sysctl then write the unread text again, and on this kernel (before 4.5, "
            "kernel.sysctl_writes_strict defaults to 0) that second write is parsed as a new value and fails: "
            f'`sysctl: setting key "{a.key}": Invalid argument` (exit 1 with procps 4.0) and systemd-sysctl '
            "fails the unit, although the value applied.",
            extra,
        )
    if vc.comment is not None:
        extra = {"comment": vc.comment}
        if vc.status == "unknown" and a.key not in NAMED_TEXT:
            return (
                Severity.low,
                f"{a.key} is set to {a.value!r}: sysctl files have no trailing comments, so the comment reaches "
                "the kernel. For an integer key the number applies and the rest is left unread; a text key "
                "stores the comment as part of its value or refuses it.",
                extra,
            )
        refused = a.key in NAMED_TEXT
        effect = (
            "no such name exists, so the kernel refuses the write (`setting key ...: No such file or directory`; "
            "systemd-sysctl logs it and goes on) and the key keeps its previous value"
            if refused
            else "the kernel stores it as part of the text value"
        )
        return (
            Severity.high,
            f"{a.key} is set to {a.value!r}: sysctl files have no trailing comments, and for a text key the "
            f"whole rest of the line is the value: {effect}.",
            extra,
        )
    return None


_STYLE_FIX = "Move the comment to a line of its own (`# ...` before the setting); the value itself is fine."
