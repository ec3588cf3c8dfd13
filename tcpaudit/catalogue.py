"""The catalogue as text: `tcpaudit rules`, `tcpaudit explain`, and the generated docs/rules/."""

from __future__ import annotations

import json
from pathlib import Path

from .rules.base import RuleMeta
from .rules.engine import catalogue, resolve_ids


class UnknownRuleError(ValueError):
    pass


def metas() -> list[RuleMeta]:
    return [r.meta for r in catalogue()]


def catalogue_json() -> str:
    return json.dumps([m.model_dump(mode="json") for m in metas()], indent=2)


def catalogue_table() -> str:
    from rich.text import Text

    from . import terminal  # wraps to the terminal's width; severity coloured when colour is on

    color = terminal.use_color()
    rows = [
        [
            m.id,
            Text(m.severity.value, style=terminal.SEVERITY_STYLE.get(m.severity.value, "") if color else ""),
            m.title,
        ]
        for m in metas()
    ]
    return terminal.render(
        [terminal.table(["rule", "severity", "title"], rows, no_wrap=(0, 1))], terminal.width(), color
    )


def meta_for(rule_id: str) -> RuleMeta:
    (rid,) = resolve_ids([rule_id])
    for m in metas():
        if m.id == rid:
            return m
    from .config import unknown_rule_message

    raise UnknownRuleError(unknown_rule_message(rule_id) or f"unknown rule {rule_id!r}; `tcpaudit rules` lists them")


def rule_markdown(m: RuleMeta) -> str:
    lines = [f"# {m.id}: {m.title}", ""]
    if m.aliases:
        lines += [f"Also known as: {', '.join(m.aliases)}", ""]
    lines += [f"Default severity: **{m.severity.value}** (findings raise or lower it with context and evidence)", ""]
    if m.keys:
        lines += ["Sysctls: " + ", ".join(f"`{k}`" for k in m.keys), ""]
    lines += ["## Summary", "", m.summary, "", "## Why it fails", ""]
    lines += [f"{i}. {step}" for i, step in enumerate(m.mechanism, 1)]
    lines += [
        "",
        "## When it matters",
        "",
        m.when_it_matters,
        "",
        "## Remediation",
        "",
        m.remediation,
        "",
        "## References",
        "",
    ]
    lines += [f"- [{r.title}]({r.url})" for r in m.references]
    return "\n".join(lines) + "\n"


def explain_rule(rule_id: str) -> str:
    return rule_markdown(meta_for(rule_id))


def render_docs() -> dict[str, str]:
    """File name -> content for docs/rules/."""
    files = {f"{m.id}.md": rule_markdown(m) for m in metas()}
    index = [
        "# Rule catalogue",
        "",
        "Generated from the rule metadata by `python -m tcpaudit.catalogue`; do not edit by hand.",
        "",
        "| rule | severity | title |",
        "|---|---|---|",
    ]
    index += [f"| [{m.id}]({m.id}.md) | {m.severity.value} | {m.title} |" for m in metas()]
    files["README.md"] = "\n".join(index) + "\n"
    return files


def write_docs(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    wanted = render_docs()
    for old in directory.glob("*.md"):
        if old.name not in wanted:
            old.unlink()
    for name, text in wanted.items():
        (directory / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":  # python -m tcpaudit.catalogue [DIR]
    import sys

    write_docs(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/rules"))
