"""Config units -> effective settings -> the same rules a host gets -> Targets."""

from __future__ import annotations

import datetime as _dt
import fnmatch
from typing import Any

from ..audit import AuditOptions, kernel_db, parse_release_or_none, rule_keys
from ..context import resolve_context
from ..kernel.keys import key_status
from ..model import KernelRef, Location, Target, TargetStatus
from ..rules.engine import catalogue, run_rules
from ..sanitize import clean_text
from ..snapshot import KernelInfo, Snapshot, Source
from .model import Assignment, ConfigFacts, ConfigUnit, Problem
from .values import check_value, fold, likely_misspelling, presence

# The kernel a config is judged for when --kernel is not given: a current LTS-era release.
DEFAULT_KERNEL = "6.8.0"


def _glob_candidates(kdb: Any) -> set[str]:
    keys = {k for r in catalogue() for k in r.meta.keys}
    if kdb is not None:
        keys |= set(getattr(kdb, "sysctls", {}) or {})
    return keys


def _is_port_range(kdb: Any, key: str) -> bool:
    fact = kdb.sysctl(key) if kdb is not None else None
    return fact is not None and fact.type == "port_range"


def _default(kdb: Any, release: Any, key: str) -> str | None:
    fact = kdb.sysctl(key) if kdb is not None else None
    return fact.default_in(release) if fact is not None and release is not None else None


def effective_settings(assignments: list[Assignment], kdb: Any, release: Any) -> dict[str, tuple[str, Location]]:
    """What the kernel ends up with: per key, the last assignment it accepts.

    Keys that do not exist on the target kernel and values it rejects are left out, so rules
    judge the kernel default there (which is what the system really runs with). Glob keys
    (systemd) set every known matching key that has no explicit assignment and is not excluded
    with a `-key` line.
    """
    out: dict[str, tuple[str, Location]] = {}
    explicit = {a.key for a in assignments if a.value is not None and not a.is_glob}
    excluded = {a.key for a in assignments if a.value is None}
    globs: list[Assignment] = []
    for a in assignments:
        if a.value is None or a.templated:
            continue
        if a.is_glob:
            globs.append(a)
            continue
        vc = check_value(a, kdb, release, out)
        if presence(kdb, release, a.key) is False or vc.status == "invalid":
            continue
        value = fold(vc.applied or a.value)  # `300 # note`: the kernel stores 300
        if len(value.split()) == 1 and _is_port_range(kdb, a.key):
            # one field sets only the low end; the high end stays what it was (an earlier line or the default)
            before = out[a.key][0] if a.key in out else _default(kdb, release, a.key)
            high = before.split()[1:2] if before else []
            if not high or not high[0].isdigit():
                continue  # the result cannot be known: judge the default rather than guess
            if int(value) > int(high[0]):
                continue  # LOW above the current HIGH: EINVAL, the key keeps its value
            value = f"{value} {high[0]}"
        out[a.key] = (value, a.location)
    if globs:
        candidates = sorted(_glob_candidates(kdb) - explicit - excluded)
        for g in globs:
            for key in candidates:
                if not fnmatch.fnmatchcase(key, g.key) or presence(kdb, release, key) is False:
                    continue
                concrete = Assignment(key=key, value=g.value, location=g.location, raw_key=g.raw_key, syntax=g.syntax)
                if check_value(concrete, kdb, release).status != "invalid":
                    out[key] = (fold(g.value or ""), g.location)
    return out


# What happens to a key the kernel does not have, by how it is written (as SYS001 words it).
_UNKNOWN_KEY_EFFECT = {
    "sysctl.conf": (
        '`sysctl --system` (and systemd-sysctl at boot) prints "cannot stat /proc/sys/{path}: No such '
        'file or directory" and goes on'
    ),
    "sysctl -w": '`sysctl -w` fails with "cannot stat /proc/sys/{path}"',
    "tuned": "tuned logs an error for it",
}
_UNKNOWN_KEY_DEFAULT = "writing /proc/sys/{path} fails"


def misspelled_keys(assignments: list[Assignment], kdb: Any) -> list[Problem]:
    """SYS004 problems for keys that are one slip away from a key the knowledge base knows (one per key and file)."""
    groups: dict[tuple[str, str], list[Assignment]] = {}
    for a in assignments:
        if a.value is not None and not a.is_glob:
            groups.setdefault((a.key, a.location.file), []).append(a)
    out = []
    for (key, _file), group in groups.items():
        meant = likely_misspelling(kdb, key)
        if meant is None:
            continue
        first = group[0]
        effect = _UNKNOWN_KEY_EFFECT.get(first.syntax, _UNKNOWN_KEY_DEFAULT).format(path=key.replace(".", "/"))
        also = f" (also {', '.join(a.where for a in group[1:])})" if len(group) > 1 else ""
        quiet = (
            " The '-' prefix makes sysctl ignore that error, so not even a message is left."
            if all(a.ignore_errors for a in group)
            else ""
        )
        out.append(
            Problem(
                "unknown_key",
                f"{key}{also} is not a sysctl tcpaudit knows, and it is one slip away from one it does: did you mean "
                f"{meant}? For a key the kernel does not have, {effect}, and the intended setting never applies "
                f"({meant} keeps its current value).{quiet} Correct the name, or check it with `sysctl -a` on the "
                "target kernel.",
                first.location,
                (key,),
            )
        )
    return out


def config_facts(unit: ConfigUnit, opts: AuditOptions, kernel: str | None = None) -> tuple[ConfigFacts, list[str]]:
    """The Facts the rules see for one unit, and the context lines that say which kernel was assumed.

    `kernel` None: the file's own kernel.osrelease (a `sysctl -a` capture), else DEFAULT_KERNEL.
    """
    notes: list[str] = []
    if kernel:
        release_s = kernel
        notes.append(f"target kernel {kernel} (--kernel)")
    elif unit.kernel_hint and parse_release_or_none(unit.kernel_hint) is not None:
        release_s = unit.kernel_hint
        notes.append(f"target kernel {release_s} (kernel.osrelease in the file; --kernel overrides)")
    else:
        release_s = DEFAULT_KERNEL
        notes.append(f"target kernel {DEFAULT_KERNEL} (default: a current kernel; say --kernel RELEASE for yours)")
    kdb = kernel_db()
    release = parse_release_or_none(release_s)
    configured = effective_settings(unit.assignments, kdb, release)
    snap = Snapshot(
        hostname=unit.name[:253] or "config",
        collected_at=_dt.datetime.now(_dt.timezone.utc),
        source=Source.file,
        collector="tcpaudit lint",
        kernel=KernelInfo(release=release_s, version=release.upstream if release else None),
        sysctls={k: v for k, (v, _) in configured.items()},
    )
    ctx = resolve_context(opts.context, snap)
    # A `sysctl -a` capture (kernel_hint) lists what a kernel has: its names are never typos.
    # A key SYS001 reports as absent (with the nearest real key) is not also a SYS004 typo problem.
    typos = (
        []
        if unit.kernel_hint
        else [p for p in misspelled_keys(unit.assignments, kdb) if key_status(p.keys[0], release).status != "absent"]
    )
    facts = ConfigFacts(
        snapshot=snap,
        context=ctx,
        kind="config",
        kdb=kdb,
        release=release,
        configured=configured,
        policy=opts.policy,
        assignments=list(unit.assignments),
        problems=list(unit.problems) + typos,
        captured=bool(unit.kernel_hint),
        host_namespaces=unit.host_namespaces,
    )
    return facts, notes + ctx.assumed


def lint_unit(unit: ConfigUnit, opts: AuditOptions, kernel: str | None = None) -> Target:
    """Run the catalogue over one unit (suppressions are applied by the caller)."""
    facts, context = config_facts(unit, opts, kernel)
    read_by_rules = set(rule_keys())
    name = clean_text(unit.name, 400)
    findings, results = run_rules(facts, name, disabled=opts.disabled_rules)
    gaps = [clean_text(g, 400) for g in unit.gaps]
    return Target(
        name=name,
        kind="config",
        status=TargetStatus.partial if gaps else TargetStatus.ok,
        # every reporter shows a partial target's error (SARIF notifications, Markdown, the table's gaps)
        error=clean_text("; ".join(gaps), 600) if gaps else None,
        gaps=gaps,
        kernel=KernelRef(release=facts.snapshot.kernel.release, version=facts.snapshot.kernel.version),
        findings=findings,
        checks=results,
        context=context + [clean_text(n, 300) for n in unit.notes],
        files=[clean_text(f, 400) for f in unit.files],
        sysctls={k: clean_text(v, 300) for k, (v, _) in sorted(facts.configured.items()) if k in read_by_rules},
    )
