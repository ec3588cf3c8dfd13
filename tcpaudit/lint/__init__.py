"""Lint configuration before it ships: sysctl.conf/sysctl.d trees, `sysctl -w` lists, tuned profiles,
Markdown notes, Ansible/Salt YAML, Kubernetes manifests, docker-compose files and JSON patches.

    targets = lint_paths(["deploy/"], opts=AuditOptions(), kernel="5.15.0")
    targets = lint_root("rootfs/", opts=AuditOptions())     # as `sysctl --system` would apply it at boot

Each config unit (a boot tree, a file, a pod spec, a compose service) becomes a `config` Target
judged by the same rules as hosts, for the target kernel.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from pathlib import Path

from ..audit import AuditOptions
from ..model import Target
from ..suppress import apply_suppressions
from .model import Assignment, ConfigFacts, ConfigUnit, InlineIgnore, Problem
from .run import DEFAULT_KERNEL, config_facts, effective_settings, lint_unit
from .text import find_directives, parse_sysctl_conf

__all__ = [
    "DEFAULT_KERNEL",
    "Assignment",
    "ConfigFacts",
    "ConfigUnit",
    "InlineIgnore",
    "LintInputError",
    "Problem",
    "config_facts",
    "effective_settings",
    "lint_root",
    "lint_paths",
    "lint_unit",
    "lint_units",
    "parse_text",
    "root_unit",
    "units_for_paths",
]

# .files brings in the YAML/JSON parsers (PyYAML, ~40 ms). The rules import tcpaudit.lint.model/values, so every
# `tcpaudit host` imports this package; the file readers load on first use instead (docs/benchmarks.md).
_FROM_FILES = frozenset(
    {"LintInputError", "display_path", "parse_file", "parse_text", "read_text", "system_files", "walk"}
)


def __getattr__(name: str):  # PEP 562: `from tcpaudit.lint import parse_text`
    if name in _FROM_FILES:
        from . import files

        return getattr(files, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def root_unit(root: str | Path) -> ConfigUnit:
    """The boot-time sysctl configuration of the tree under `root`, in `sysctl --system` order."""
    from .files import SYSTEM_CONF, SYSTEM_DIRS, LintInputError, display_path, read_text, system_files

    root_display = str(root)
    root_p = Path(root).resolve()
    if not root_p.is_dir():
        raise LintInputError(f"{root_display}: --root must be a directory")
    tree = system_files(root_p)
    unit = ConfigUnit(name=root_display, syntax="sysctl.conf", notes=list(tree.notes))
    for _sys_path, path in tree.files:
        shown = display_path(path, root_p, root_display)
        text = read_text(path, shown)
        a, p = parse_sysctl_conf(text, shown, strict=True)
        ignores, notes = find_directives(text, shown, a)
        unit.assignments += a
        unit.problems += p
        unit.ignores += ignores
        unit.notes += notes
        unit.files.append(shown)
    if tree.files:
        unit.notes.insert(0, "applied in `sysctl --system` order: " + ", ".join(s for s, _ in tree.files))
    elif tree.notes:  # every file masked or dangling: a real tree that sets nothing
        unit.notes.insert(0, f"{root_display}: no sysctl.d or sysctl.conf files under this root")
    else:
        # a --root typo in CI must not pass green, as a directory with nothing to lint does not
        raise LintInputError(
            f"{root_display}: no sysctl files under this root (looked for *.conf in "
            + ", ".join(SYSTEM_DIRS)
            + f" and for {SYSTEM_CONF}); is it the right directory?"
        )
    return unit


def units_for_paths(paths: Iterable[str | Path], merge: bool = False) -> list[ConfigUnit]:
    """Files as given, directories walked in sorted order; `merge` applies them all, in that order, as one
    configuration (like `sysctl -p A -p B`)."""
    from .files import LintInputError, parse_file, parse_text, refuse_binary, walk

    units: list[ConfigUnit] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found_files = walk(p)
            if not found_files:
                # a gate that silently checks nothing is worse than an error
                raise LintInputError(
                    f"{raw}: no sysctl files or manifests found in this directory (looked for names containing "
                    "'sysctl', *.conf under a sysctl directory, *.yaml/*.yml/*.json); name the files, or use "
                    "--root for a whole system tree"
                )
            for f in found_files:
                found = parse_file(f, str(f))
                units += [u for u in found if u.assignments or u.problems or u.gaps]
        elif str(raw) == "-":
            text = _stdin()
            refuse_binary(text, "<stdin>")
            units += parse_text(text, "<stdin>")
        elif p.exists():
            units += parse_file(p)
        else:
            raise LintInputError(f"{raw}: no such file or directory")
    if merge and units:
        merged = ConfigUnit(
            name=", ".join(dict.fromkeys(f for u in units for f in u.files)) or "merged", syntax="merged"
        )
        for u in units:
            merged.assignments += u.assignments
            merged.problems += u.problems
            merged.ignores += u.ignores
            merged.files += [f for f in u.files if f not in merged.files]
            merged.notes += u.notes
            merged.gaps += u.gaps
            merged.host_namespaces = tuple(dict.fromkeys(merged.host_namespaces + u.host_namespaces))
            merged.kernel_hint = merged.kernel_hint or u.kernel_hint
        merged.notes.insert(0, "files applied as one configuration, in the order given (--merge)")
        return [merged]
    return units


def _stdin() -> str:
    import sys

    return sys.stdin.read()


def lint_units(
    units: Iterable[ConfigUnit],
    opts: AuditOptions | None = None,
    kernel: str | None = None,
    today: _dt.date | None = None,
) -> list[Target]:
    opts = opts or AuditOptions()
    targets = []
    for u in units:
        t = lint_unit(u, opts, kernel)
        apply_suppressions(t, waivers=opts.waivers, baseline=opts.baseline, inline=u.ignores, today=today)
        targets.append(t)
    return targets


def lint_paths(
    paths: Iterable[str | Path],
    opts: AuditOptions | None = None,
    kernel: str | None = None,
    merge: bool = False,
    today: _dt.date | None = None,
) -> list[Target]:
    return lint_units(units_for_paths(paths, merge), opts, kernel, today)


def lint_root(
    root: str | Path, opts: AuditOptions | None = None, kernel: str | None = None, today: _dt.date | None = None
) -> list[Target]:
    return lint_units([root_unit(root)], opts, kernel, today)
