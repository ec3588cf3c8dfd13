"""What the knowledge base says about one kernel release (``tcpaudit kernel RELEASE``)."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from .db import KernelDB, load_kernel_db
from .release import parse_release

__all__ = ["kernel_summary", "render_kernel_summary_table"]


def kernel_summary(release_text: str, db: KernelDB | None = None) -> dict[str, Any]:
    """Summarise sysctl facts and known issues for ``release_text``.

    Raises :class:`~tcpaudit.kernel.release.KernelReleaseError` for a bad release.
    The result is plain JSON-compatible data::

        {"release": "5.4.0-137-generic", "version": "5.4.0",
         "sysctls": {NAME: {"present", "default", "per_netns", "source"}},
         "issues": [{"id", "title", "applies", "fixed_in", "source"}]}

    Answers come from the upstream version table; distribution kernels may
    differ (see each issue's reason via ``KernelDB.issues_for``).
    """
    release = parse_release(release_text)
    database = db if db is not None else load_kernel_db()
    sysctls: dict[str, dict[str, Any]] = {}
    for name in sorted(database.sysctls):
        fact = database.sysctls[name]
        source = fact.source_for_presence(release)
        sysctls[name] = {
            "present": fact.present_in(release),
            "default": fact.default_in(release),
            "per_netns": fact.per_netns_in(release),
            "source": source.as_dict() if source is not None else None,
        }
    issues = [
        {
            "id": status.id,
            "title": status.title,
            "applies": status.applies,
            "fixed_in": status.fixed_in,
            "source": status.source.as_dict(),
        }
        for status in database.issues_for(release)
    ]
    return {"release": release.raw, "version": release.upstream, "sysctls": sysctls, "issues": issues}


def _cell(value: Any) -> str:
    if value is None:
        return "?"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    text = str(value)
    return text if len(text) <= 48 else text[:45] + "..."


def _source_ref(source: dict[str, Any] | None) -> str:
    if not source:
        return ""
    if source.get("commit"):
        ref = source["commit"][:12]
        return f"{ref} ({source['tag']})" if source.get("tag") else ref
    if source.get("file"):
        return source["file"]
    return source.get("url", "")


def render_kernel_summary_table(summary: dict[str, Any]) -> str:
    """Human-readable tables for :func:`kernel_summary` output."""
    header = f"Kernel {summary['release']} (upstream base {summary['version']})"
    sysctl_rows = [
        [
            name,
            _cell(info["present"]),
            _cell(info["default"]),
            _cell(info["per_netns"]),
            _source_ref(info.get("source")),
        ]
        for name, info in summary["sysctls"].items()
    ]
    issue_rows = [
        [
            issue["id"],
            _cell(issue["applies"]),
            issue["fixed_in"] or "-",
            _cell(issue["title"]),
            _source_ref(issue.get("source")),
        ]
        for issue in summary["issues"]
    ]
    sysctl_table = tabulate(
        sysctl_rows, headers=["sysctl", "present", "default", "per netns", "source"], tablefmt="simple"
    )
    issue_table = tabulate(issue_rows, headers=["issue", "applies", "fixed in", "title", "source"], tablefmt="simple")
    legend = "'?' = the knowledge base cannot tell for this version (see kernel_db/README.md)."
    return f"{header}\n\n{sysctl_table}\n\n{issue_table}\n\n{legend}\n"
