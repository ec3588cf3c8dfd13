"""What the knowledge base says about one kernel release (``tcpaudit kernel RELEASE``).

The known issues come first, each with its verdict, confidence and reason; then the sysctls. The two never
contradict each other on one screen: a sysctl that a known issue is about, where that issue's verdict for this
build is unknown (a distribution kernel that may carry a backport), is shown as unknown too, with the upstream
base's answer beside it.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from typing import Any

from tabulate import tabulate

from .db import KernelDB, load_kernel_db
from .release import parse_host_release

__all__ = ["kernel_summary", "render_kernel_summary_table"]

_VERDICT = {True: "affected", False: "not affected", None: "unknown"}


def _issue_sysctls(database: KernelDB) -> dict[str, list[str]]:
    """issue id -> the sysctls it is about: its sysctl evidence, and the sysctls its title names."""
    out: dict[str, list[str]] = {}
    for iid, issue in database.issues.items():
        names: list[str] = []
        if issue.sysctl_evidence is not None:
            names.append(issue.sysctl_evidence.name)
        for name in database.sysctls:
            short = name.rsplit(".", 1)[-1]
            if name not in names and re.search(rf"(?<!\w){re.escape(short)}(?!\w)", issue.title):
                names.append(name)
        out[iid] = names
    return out


def kernel_summary(
    release_text: str,
    db: KernelDB | None = None,
    *,
    proc_version: str | None = None,
    version_signature: str | None = None,
) -> dict[str, Any]:
    """Summarise sysctl facts and known issues for ``release_text``.

    ``proc_version`` (``/proc/version`` or ``uname -v``) and ``version_signature`` (Ubuntu's
    ``/proc/version_signature``) let a distribution build be judged as the upstream stable point release it
    states (Debian's ``6.1.0-18-amd64`` built from 6.1.76). Raises
    :class:`~tcpaudit.kernel.release.KernelReleaseError` for a bad release. Plain JSON-compatible data::

        {"release": "5.4.0-137-generic", "version": "5.4.0", "flavour": "ubuntu", "version_from": null,
         "sysctls": {NAME: {"present", "default", "per_netns", "source", "issues", "unknown_because",
                            "evidence_of"}},
         "issues": [{"id", "title", "applies", "verdict", "confidence", "reason", "fixed_in", "source",
                     "sysctls"}]}
    """
    release = parse_host_release(release_text, proc_version, version_signature)
    database = db if db is not None else load_kernel_db()
    about = _issue_sysctls(database)
    issues = []
    unknown_for: dict[str, list[str]] = {}
    for status in database.issues_for(release):
        issues.append(
            {
                "id": status.id,
                "title": status.title,
                "applies": status.applies,
                "verdict": _VERDICT[status.applies],
                "confidence": status.confidence,
                "reason": status.reason,
                "fixed_in": status.fixed_in,
                "source": status.source.as_dict(),
                "sysctls": about.get(status.id, []),
            }
        )
        if status.applies is None:
            for name in about.get(status.id, []):
                unknown_for.setdefault(name, []).append(status.id)
    sysctls: dict[str, dict[str, Any]] = {}
    for name in sorted(database.sysctls):
        fact = database.sysctls[name]
        source = fact.source_for_presence(release)
        linked = [iid for iid, names in about.items() if name in names]
        sysctls[name] = {
            "present": fact.present_in(release),
            "default": fact.default_in(release),
            "per_netns": fact.per_netns_in(release),
            "source": source.as_dict() if source is not None else None,
            "issues": sorted(linked),
            # the upstream table's answer stands for the declared base only: a known issue about this sysctl
            # is unknown for this build (a backport may have changed it)
            "unknown_because": sorted(unknown_for.get(name, [])),
            "evidence_of": sorted(
                iid for iid in linked if (ev := database.issues[iid].sysctl_evidence) is not None and ev.name == name
            ),
        }
    return {
        "release": release.raw,
        "version": release.upstream,
        "flavour": release.flavour,
        "version_from": release.point_source,
        "sysctls": sysctls,
        "issues": issues,
    }


def _cell(value: Any, limit: int = 48) -> str:
    if value is None:
        return "?"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _source_ref(source: dict[str, Any] | None) -> str:
    if not source:
        return ""
    if source.get("commit"):
        ref = source["commit"][:12]
        return f"{ref} ({source['tag']})" if source.get("tag") else ref
    if source.get("file"):
        return source["file"]
    return str(source.get("url", ""))


def _width(width: int | None) -> int:
    return max(60, width or shutil.get_terminal_size((100, 24)).columns)


def _header(summary: dict[str, Any]) -> list[str]:
    release, version = summary["release"], summary["version"]
    flavour = summary.get("flavour")
    if summary.get("version_from"):
        return [
            f"Kernel {release}"
            + (f" ({flavour})" if flavour else "")
            + f": judged as upstream {version}, from {summary['version_from']}",
            "  (stable fixes count; the distribution's own patches beyond stable are not known)",
        ]
    line = f"Kernel {release}" + (f" ({flavour})" if flavour else "") + f": upstream base {version}"
    if flavour in ("debian", "ubuntu"):
        return [
            line,
            "  (a distribution build: stable fixes after the base are not judged; give --version-string with "
            "`uname -v`"
            + (" or --version-signature with /proc/version_signature" if flavour == "ubuntu" else "")
            + ", or run `tcpaudit kernel` on the host)",
        ]
    return [line]


def _wrap_rows(rows: list[list[str]], headers: list[str], wrap_col: int, width: int, min_room: int = 12) -> str | None:
    """A plain table whose column `wrap_col` is wrapped so that no line is wider than `width`; None when that
    column would get fewer than `min_room` characters."""
    room = width
    while room >= min_room:
        out: list[list[str]] = []
        for r in rows:
            parts = textwrap.wrap(r[wrap_col], room) or [""]
            out.append([*r[:wrap_col], parts[0], *r[wrap_col + 1 :]])
            out.extend(["" if i != wrap_col else p for i in range(len(r))] for p in parts[1:])
        text = tabulate(out, headers=headers, tablefmt="simple", disable_numparse=True)
        widest = max(len(ln) for ln in text.splitlines())
        if widest <= width:
            return text
        room -= widest - width
    return None


def _blocks(rows: list[list[str]], width: int) -> str:
    """Narrow terminals: one line per issue (id, verdict, confidence), its reason wrapped and indented below."""
    out: list[str] = []
    for iid, verdict, confidence, why in rows:
        head = f"{iid}  {verdict} ({confidence} confidence)"
        out.append(head if len(head) <= width else f"{iid}\n  {verdict} ({confidence} confidence)")
        out += textwrap.wrap(why, width - 4, initial_indent="    ", subsequent_indent="    ")
    return "\n".join(out)


def render_kernel_summary_table(summary: dict[str, Any], verbose: bool = False, width: int | None = None) -> str:
    """Human-readable tables for :func:`kernel_summary` output, no line wider than `width` (the terminal)."""
    cols = _width(width)
    lines = [w for h in _header(summary) for w in textwrap.wrap(h, cols, subsequent_indent="  ")]
    issue_rows = []
    # the header says which kernel and how it is judged: the reasons need not repeat it
    flavour, raw, base = summary.get("flavour"), summary["release"], summary["version"]
    repeated = [f"{flavour} kernel {raw} (declared upstream base {base})"]
    if summary.get("version_from"):
        repeated.append(
            f" ({flavour} {raw} judged as upstream {base}, from {summary['version_from']}; its own patches "
            "beyond stable are not known)"
        )
    for issue in summary["issues"]:
        reason = issue.get("reason") or ""
        reason = reason.replace(repeated[0], "this build")
        for text in repeated[1:]:
            reason = reason.replace(text, "")
        if verbose:
            reason = f"{issue['title']}. {reason}" + (
                f" Source: {_source_ref(issue.get('source'))}" if issue.get("source") else ""
            )
        issue_rows.append(
            [issue["id"], issue.get("verdict", _VERDICT[issue["applies"]]), issue.get("confidence", ""), reason]
        )
    table = _wrap_rows(issue_rows, ["known issue", "verdict", "confidence", "why"], 3, cols, min_room=40)
    lines += ["", table if table is not None else _blocks(issue_rows, cols)]

    sysctl_rows = []
    for name, info in summary["sysctls"].items():
        unknown = info.get("unknown_because") or []
        present, default = _cell(info["present"]), _cell(info["default"], 40)
        if unknown:
            # the issue may be about the key's existence (its sysctl evidence, or a key absent upstream that a
            # backport could add) or only about its value
            if info["present"] is False or info.get("evidence_of"):
                present = f"? (base: {present})"
            default = f"? (base: {default})"
        row = [name, present, default, _cell(info["per_netns"])]
        if verbose:
            row.append(_source_ref(info.get("source")))
        sysctl_rows.append(row)
    headers = ["sysctl", "present", "default", "per netns"] + (["source"] if verbose else [])
    table = tabulate(sysctl_rows, headers=headers, tablefmt="simple", disable_numparse=True)
    if max((len(ln) for ln in table.splitlines()), default=0) > cols:
        table = _wrap_rows([r[:4] for r in sysctl_rows], headers[:4], 2, cols) or "\n".join(
            "\n".join(
                textwrap.wrap(
                    f"{r[0]}: present {r[1]}, default {r[2]}, per netns {r[3]}", cols, subsequent_indent="    "
                )
            )
            for r in sysctl_rows
        )
    lines += ["", table, ""]
    legend = (
        "'?' = unknown for this build: the knowledge base cannot tell, or a known issue about the sysctl is "
        "unknown here (the upstream base's answer in brackets). `tcpaudit explain KI-...` prints an issue in "
        "full; -v adds titles and sources; --format json has everything."
    )
    lines += textwrap.wrap(legend, cols)
    return "\n".join(ln.rstrip() for ln in lines) + "\n"


class UnknownIssueError(ValueError):
    pass


def _source_line(label: str, src: Any) -> str:
    d = src.as_dict()
    parts = [d["commit"][:12]] if d.get("commit") else []
    parts += [f'"{d["subject"]}"'] if d.get("subject") else []
    parts += [f"({d['tag']})"] if d.get("tag") else []
    parts += [d["file"]] if d.get("file") else []
    parts += [d["url"]] if d.get("url") else []
    return f"{label}: " + " ".join(parts)


def explain_issue(issue_id: str, db: KernelDB | None = None, width: int | None = None) -> str:
    """Everything the knowledge base holds about one known issue (`tcpaudit explain KI-...`)."""
    import difflib

    database = db if db is not None else load_kernel_db()
    wanted = issue_id.strip().upper()
    if wanted not in database.issues:
        close = difflib.get_close_matches(wanted, sorted(database.issues), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise UnknownIssueError(f"unknown kernel issue {issue_id[:60]!r}{hint} (`tcpaudit kernel RELEASE` lists them)")
    issue = database.issues[wanted]
    cols = _width(width)

    def para(text: str, indent: str = "") -> list[str]:
        return textwrap.wrap(" ".join(text.split()), cols, initial_indent=indent, subsequent_indent=indent) or [""]

    out = [f"{issue.id}", *para(issue.title), ""]
    affects = issue._range_text()
    out += [
        f"Affects: {affects}" + (f"; fixed in mainline {issue.fixed_in_mainline}" if issue.fixed_in_mainline else "")
    ]
    out += [f"Confidence: {issue.confidence}" + (f"; category: {issue.category}" if issue.category else ""), ""]
    out += ["Summary:", *para(issue.summary, "  "), ""]
    if issue.workaround:
        out += ["Workaround:", *para(issue.workaround, "  "), ""]
    if issue.backports:
        out.append("Stable backports:")
        for b in issue.backports:
            out += para(
                f"{b.kind} in {b.version or b.series + '.y (point release unverified)'}"
                + (f" ({b.note})" if b.note else ""),
                "  - ",
            )
        out.append("")
    if issue.distro:
        out.append("Distribution kernels:")
        for p in issue.distro:
            out += para(f"{p.flavour} {p.match}: {p.status.replace('_', ' ')} ({p.confidence})", "  - ")
        out.append("")
    if issue.sysctl_evidence is not None:
        ev = issue.sysctl_evidence
        out += para(
            f"Evidence on a host: {ev.name} present means {ev.present_means}" + (f" ({ev.note})" if ev.note else "")
        )
        out.append("")
    out.append("Sources:")
    out += para(_source_line("source", issue.source), "  ")
    if issue.fix is not None:
        out += para(_source_line("fix", issue.fix), "  ")
    if issue.introduced_by is not None:
        out += para(_source_line("introduced by", issue.introduced_by), "  ")
    out += [f"  {url}" for url in issue.references]
    if issue.notes:
        out += ["", "Notes:", *para(issue.notes, "  ")]
    out += ["", "`tcpaudit kernel RELEASE` gives this issue's verdict for a kernel."]
    return "\n".join(ln.rstrip() for ln in out) + "\n"
