"""SYS003: a key is set more than once; the later assignment wins."""

from tcpaudit.lint.model import ConfigFacts
from tcpaudit.lint.values import check_value, presence
from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta


class SetMoreThanOnce(Rule):
    meta = RuleMeta(
        id="SYS003",
        title="sysctl key is set more than once: the later assignment wins",
        severity=Severity.info,
        applies_to=["config"],
        summary=(
            "The same sysctl is assigned in several places (lines, files or, for pods, securityContext and an "
            "init container). Only the last accepted write counts, so the earlier lines are dead configuration "
            "that misleads whoever edits them."
        ),
        mechanism=[
            "`sysctl --system` and systemd-sysctl collect the *.conf files of /etc/sysctl.d, /run/sysctl.d, "
            "/usr/local/lib/sysctl.d, /usr/lib/sysctl.d and /lib/sysctl.d (a name in an earlier directory hides "
            "the same name in later ones), sort them by file name regardless of directory, apply them in that "
            "order and apply /etc/sysctl.conf last.",
            "Every assignment is a separate write to /proc/sys, so for a key set several times the last write "
            "the kernel accepts determines the value; a later write that fails leaves the previous one in place.",
            "An administrator who changes the earlier line (for example in /etc/sysctl.conf, shadowed by a "
            "99-*.conf file or the other way round) sees no effect, and a vendor file can silently undo a local "
            "decision.",
        ],
        when_it_matters=(
            "When the values differ: the earlier value never takes effect. With identical values it is only "
            "redundancy, but the next edit of one of them will surprise someone."
        ),
        remediation=(
            "Keep one assignment per key. To override a vendor file, copy it under the same name to "
            "/etc/sysctl.d, or set the key in a file that sorts later, and delete the other assignments."
        ),
        references=[
            Reference(
                title="sysctl.d(5): configuration directories and precedence",
                url="https://www.freedesktop.org/software/systemd/man/latest/sysctl.d.html",
            ),
            Reference(
                title="sysctl(8) (procps-ng): --system applies files sorted by name, /etc/sysctl.conf last",
                url="https://man7.org/linux/man-pages/man8/sysctl.8.html",
            ),
            Reference(
                title="procps issue 200: --system orders files by base name across directories",
                url="https://gitlab.com/procps-ng/procps/-/issues/200",
            ),
        ],
    )

    def check(self, f: Facts):
        if not isinstance(f, ConfigFacts):
            return self.na("needs every assignment of a linted configuration, not only the effective values")
        by_key: dict[str, list] = {}
        for a in f.assignments:
            if a.value is not None and not a.is_glob:
                by_key.setdefault(a.key, []).append(a)
        out = []
        for key, items in by_key.items():
            if len(items) < 2:
                continue
            accepted = [
                a
                for a in items
                if presence(f.kdb, f.release, key) is not False and check_value(a, f.kdb, f.release).status != "invalid"
            ]
            winner = accepted[-1] if accepted else items[-1]
            others = [a for a in items if a is not winner]
            differ = len({" ".join((a.value or "").split()) for a in items}) > 1
            text = (
                f"{key} is set {len(items)} times; the later assignment wins: {winner.where} "
                f"({winner.value!r}) overrides " + ", ".join(f"{a.where} ({a.value!r})" for a in others) + "."
            )
            if winner is not items[-1]:
                text += " (The last one is rejected by the kernel, so the previous accepted value stays.)"
            text += (
                " The earlier value never takes effect; editing that line changes nothing."
                if differ
                else " All of them set the same value, so this is redundancy that the next edit will trip over."
            )
            out.append(
                self.finding(
                    f,
                    keys=[key],
                    location=winner.location,
                    severity=Severity.info,
                    explanation=text,
                    evidence={
                        "key": key,
                        "effective": winner.value,
                        "assignments": [f"{a.where} = {a.value}" for a in items],
                        "related_locations": [
                            {
                                "file": a.location.file,
                                "line": a.location.line,
                                "message": f"earlier assignment {key} = {a.value}",
                            }
                            for a in others
                        ],
                    },
                )
            )
        return out or None
