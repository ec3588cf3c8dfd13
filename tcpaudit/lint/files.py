"""Read files into config units: pick the format, and resolve a root tree as `sysctl --system` does."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .model import ConfigUnit
from .structured import StructuredError, json_as_yaml, parse_structured
from .text import find_directives, is_tuned, parse_markdown, parse_sysctl_conf, parse_tuned

MAX_FILE_BYTES = 16 << 20

# sysctl(8) --system (procps-ng) and sysctl.d(5): these directories, in this order of precedence; a
# file name seen in an earlier directory hides the same name in later ones; the surviving *.conf
# files are applied sorted by file name regardless of directory; /etc/sysctl.conf is applied last.
SYSTEM_DIRS = ("etc/sysctl.d", "run/sysctl.d", "usr/local/lib/sysctl.d", "usr/lib/sysctl.d", "lib/sysctl.d")
SYSTEM_CONF = "etc/sysctl.conf"

_YAML = (".yaml", ".yml", ".sls")
_MARKDOWN = (".md", ".markdown")


class LintInputError(ValueError):
    """A path that cannot be linted (missing, unreadable, too large): a usage error."""


def read_text(path: Path, display: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except IsADirectoryError:
        raise LintInputError(f"{display}: is a directory") from None
    except OSError as exc:
        raise LintInputError(f"{display}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise LintInputError(f"{display}: larger than {MAX_FILE_BYTES >> 20} MiB, refusing to lint")
    text = data.decode("utf-8", errors="replace")
    refuse_binary(text, display)
    return text[1:] if text.startswith("\ufeff") else text


def refuse_binary(text: str, display: str) -> None:
    """A NUL byte means a binary file (or UTF-16), not configuration: reading its bytes as lines would only
    produce noise findings. Other bytes that are not UTF-8 are kept (as U+FFFD) and linted."""
    if "\x00" in text:
        raise LintInputError(
            f"{display}: binary file (it contains NUL bytes), not a sysctl configuration or "
            "manifest; refusing to lint it"
        )


_TEMPLATE_LINE = re.compile(r"^[ \t]*\{\{.*\}\}[ \t]*$", re.MULTILINE)


def _without_template_lines(text: str) -> str:
    """Helm/Go templates: blank the lines that are only `{{ ... }}` so the YAML around them parses."""
    return _TEMPLATE_LINE.sub("", text)


def _kernel_hint(unit: ConfigUnit) -> None:
    """A `sysctl -a` capture names its kernel (kernel.osrelease) and prints a multi-line value as the same
    key on several lines: it is a capture, not a config, so keep the first line of each key."""
    for a in unit.assignments:
        if a.key == "kernel.osrelease" and a.value:
            unit.kernel_hint = a.value.split()[0]
            unit.notes.append(
                f"{a.location.file} looks like `sysctl -a` output of kernel {unit.kernel_hint} (kernel.osrelease)"
            )
            break
    else:
        return
    kept, seen = [], set()
    for a in unit.assignments:
        if a.key not in seen:
            seen.add(a.key)
            kept.append(a)
    unit.assignments = kept


def parse_text(text: str, display: str, name: str | None = None) -> list[ConfigUnit]:
    """Units for one file's text; the format comes from the file name, then the content."""
    low = (name or display).lower()
    base = os.path.basename(low)
    units: list[ConfigUnit]
    if low.endswith(_YAML) or low.endswith(".json") or low.endswith(".tpl"):
        syntax = "json" if low.endswith(".json") else "yaml"
        try:
            body = json_as_yaml(text) if syntax == "json" else text
            try:
                units = parse_structured(body, display, syntax)
            except StructuredError:
                if "{{" not in body:
                    raise
                units = parse_structured(_without_template_lines(body), display, syntax)
                for u in units:
                    u.notes.append(f"{display}: template directives skipped; values set by templates are unknown")
        except (StructuredError, ValueError) as exc:
            reason = str(exc) if isinstance(exc, StructuredError) else f"not valid JSON ({exc})"
            a, p = parse_sysctl_conf(text, display, strict=False)
            units = [
                ConfigUnit(
                    name=display,
                    syntax="text",
                    assignments=a,
                    problems=p,
                    files=[display],
                    notes=[f"{display}: {reason}; read only its `sysctl -w` and key=value lines"],
                    gaps=_unread_structured(text, display, reason, bool(a or p)),
                )
            ]
    elif low.endswith(_MARKDOWN):
        a, p = parse_markdown(text, display)
        units = [ConfigUnit(name=display, syntax="markdown", assignments=a, problems=p, files=[display])]
    elif is_tuned(text):
        a, p, notes = parse_tuned(text, display)
        units = [ConfigUnit(name=display, syntax="tuned", assignments=a, problems=p, files=[display], notes=notes)]
    elif low.endswith(".conf") or base == "sysctl.conf":
        a, p = parse_sysctl_conf(text, display, strict=True)
        units = [ConfigUnit(name=display, syntax="sysctl.conf", assignments=a, problems=p, files=[display])]
    else:  # .txt, no suffix: `sysctl -w` lists, `sysctl -a` captures, loose notes
        a, p = parse_sysctl_conf(text, display, strict=False)
        units = [ConfigUnit(name=display, syntax="text", assignments=a, problems=p, files=[display])]
    for u in units:
        ignores, notes = find_directives(text, display, u.assignments)
        u.ignores += ignores
        u.notes += notes
        _kernel_hint(u)
        if not u.assignments and not u.problems and not u.gaps:
            u.notes.append(f"{display}: no sysctl settings found")
    return units


# Text that says a file sets sysctls in a structured form: when such a file cannot be parsed, what it sets is
# unknown, which is a gap in the report ("not read: FORMAT"), never "no sysctl settings found".
_SALT_STATE = re.compile(r"^\s*(?:sysctl\.present\s*:|-\s*present\s*$)", re.MULTILINE)
_SYSCTL_BEARING = re.compile(
    r"sysctls\s*:|sysctl\.present|\[sysctl\]|^\s*-?\s*name:\s*['\"]?(?:net|kernel|vm|fs)\.", re.MULTILINE
)


def _unread_structured(text: str, display: str, reason: str, read_some: bool) -> list[str]:
    """The gap for a YAML/JSON file that did not parse but is recognisably sysctl configuration."""
    if _SALT_STATE.search(text) and ("{%" in text or "{{" in text):
        return [
            f"not read: Salt state with Jinja templating ({display}: {reason}); Salt renders the template "
            "before the YAML exists, so the sysctl.present states it generates are unknown"
        ]
    if _SYSCTL_BEARING.search(text):
        part = "partly" if read_some else "not"
        return [f"not read: {display} ({reason}); it sets sysctls in a structured form that was {part} read"]
    return []


def shown_name(name: str) -> str:
    """A file name as reports show it: bytes that are not UTF-8 (surrogate-escaped by Python) become \\xNN,
    so every reporter can encode it and the name still says which file it was."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def parse_file(path: Path, display: str | None = None) -> list[ConfigUnit]:
    display = shown_name(display or str(path))
    return parse_text(read_text(path, display), display)


def wanted_in_walk(path: Path) -> bool:
    """Files picked up when a directory is given: sysctl files by name or place, and manifests."""
    name = path.name.lower()
    if name.endswith(_YAML + (".json",)):
        return True
    if "sysctl" in name:
        return True
    # sysctl.d/, sysctl/, files/sysctl-tuning/ ...: a .conf under a directory named for sysctl is a sysctl file
    return name.endswith(".conf") and any("sysctl" in part.lower() for part in path.parts[:-1])


def walk(directory: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            p = Path(dirpath) / f
            if wanted_in_walk(p) and p.is_file():
                out.append(p)
    return out


# ---- root trees -------------------------------------------------------------------------------
@dataclass
class _Resolved:
    path: Path | None  # None: missing; Path("/dev/null") marks a masked file
    masked: bool = False


def resolve_in_root(root: Path, rel: str, limit: int = 40) -> _Resolved:
    """Follow symlinks as the booted system would, with `root` as `/` (never escaping it)."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    cur = root
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            cur = cur.parent if cur != root else root
            continue
        nxt = cur / part
        if nxt.is_symlink():
            hops += 1
            if hops > limit:
                return _Resolved(None)
            target = os.readlink(nxt)
            if target in ("/dev/null",) and not parts:
                return _Resolved(Path(os.devnull), masked=True)
            if target.startswith("/"):
                cur = root
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        if not nxt.exists():
            return _Resolved(None)
        cur = nxt
    return _Resolved(cur)


@dataclass
class SystemTree:
    files: list[tuple[str, Path]] = field(default_factory=list)  # (system path, file on disk) in order
    notes: list[str] = field(default_factory=list)


def system_files(root: Path) -> SystemTree:
    tree = SystemTree()
    chosen: dict[str, tuple[str, _Resolved]] = {}
    for d in SYSTEM_DIRS:
        res = resolve_in_root(root, d)
        if res.path is None or not res.path.is_dir():
            continue
        for entry in sorted(os.listdir(res.path)):
            if not entry.endswith(".conf"):
                continue
            sys_path = f"/{d}/{entry}"
            if entry in chosen:
                tree.notes.append(
                    f"{sys_path} is not read: /{chosen[entry][0].lstrip('/')} has the same name and takes precedence"
                )
                continue
            file_res = resolve_in_root(root, f"{d}/{entry}")
            chosen[entry] = (sys_path, file_res)
    seen_real: set[str] = set()
    for entry in sorted(chosen):
        sys_path, res = chosen[entry]
        if res.masked:
            tree.notes.append(f"{sys_path} is a symlink to /dev/null: masked, nothing from that name is applied")
            continue
        if res.path is None or not res.path.is_file():
            tree.notes.append(f"{sys_path}: dangling or not a regular file; skipped")
            continue
        tree.files.append((sys_path, res.path))
        seen_real.add(os.path.realpath(res.path))
    res = resolve_in_root(root, SYSTEM_CONF)
    if res.path is not None and res.path.is_file() and not res.masked:
        if os.path.realpath(res.path) in seen_real:
            tree.notes.append(
                "/etc/sysctl.conf was already applied through a sysctl.d symlink; `sysctl --system` "
                "applies it again last, with the same result"
            )
        else:
            tree.files.append(("/" + SYSTEM_CONF, res.path))
    return tree


def display_path(path: Path, root: Path, root_display: str) -> str:
    try:
        rel = path.relative_to(root)
    except ValueError:
        return shown_name(str(path))
    shown = re.sub(r"/+$", "", root_display) + "/" + rel.as_posix() if root_display not in ("", ".") else rel.as_posix()
    return shown_name(shown)
