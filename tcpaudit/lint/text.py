"""Line-oriented formats: sysctl.conf / sysctl.d, `sysctl -w` lists, Markdown notes, tuned profiles.

sysctl.conf(5) and sysctl.d(5): one `key = value` per line; blank lines and lines whose first
non-blank character is `#` or `;` are comments. There are no trailing comments: everything after
`=` (blanks trimmed) is the value, so `key = 300 # five minutes` writes "300 # five minutes"
(the kernel reads the 300 of an integer key and leaves the rest; a text key gets the comment).
A leading `-` means "ignore errors for this key"; in systemd-sysctl a `-key` line without `=`
excludes that key from glob assignments.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from ..model import Location
from .keys import looks_like_sysctl, normalize_key
from .model import Assignment, InlineIgnore, Problem
from .shell import mentions_sysctl, parse_script

_DIRECTIVE = re.compile(r"tcpaudit:\s*ignore\[([^\]]*)\]\s*(.*)$", re.IGNORECASE)
_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_BLANK = re.compile(r"\s")
_PROMPT = re.compile(r"^\s*(?:\$|>)\s+")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'')


def split_lines(text: str) -> list[str]:
    """Lines as procps reads them: split on LF only, a trailing CR is line-end noise."""
    return [line.rstrip("\r") for line in text.split("\n")]


def _assignment(body: str, loc: Location, syntax: str, *, strict: bool) -> tuple[Assignment | None, Problem | None]:
    s = body.strip()
    ignore = s.startswith("-")
    if ignore:
        s = s[1:].strip()
    if "=" not in s:
        key = normalize_key(s)
        if ignore and key and not _BLANK.search(key):
            return Assignment(key=key, value=None, location=loc, raw_key=s, ignore_errors=True, syntax=syntax), None
        if strict:
            return None, Problem(
                "syntax",
                f'{s[:60]!r} is not `key = value`: procps sysctl skips it ("FILE(LINE): invalid syntax, '
                'continuing...") and systemd-sysctl too ("Line is not an assignment, ignoring", exit status 1); '
                "the rest of the file still applies",
                loc,
                (key.split()[0] if key else "",),
            )
        return None, None
    raw_key, _, value = s.partition("=")
    raw_key, value = raw_key.strip(), value.strip()
    key = normalize_key(raw_key)
    if not strict and not looks_like_sysctl(key):
        return None, None
    if not key or _BLANK.search(key):
        if not strict:
            return None, None
        return None, Problem(
            "syntax",
            f"{raw_key[:60]!r} is not a sysctl name (it contains blanks); sysctl cannot write it",
            loc,
            (key.split()[-1] if key.split() else "",),
        )
    if not value and not strict:
        return None, None
    # An empty value is written as an empty line by procps sysctl from 4.0.0 and by systemd-sysctl (procps 3.3.x
    # skipped it with "invalid syntax"): SYS002 judges what the kernel does with it.
    return Assignment(key=key, value=value, location=loc, raw_key=raw_key, ignore_errors=ignore, syntax=syntax), None


def parse_sysctl_conf(
    text: str, file: str, *, strict: bool = True, first_line: int = 1, syntax: str = "sysctl.conf"
) -> tuple[list[Assignment], list[Problem]]:
    """A sysctl.conf / sysctl.d file. Non-strict mode (notes, dumps, embedded text) skips what is not
    a sysctl assignment instead of reporting it, and also reads `sysctl -w` / `echo > /proc/sys` lines."""
    out: list[Assignment] = []
    problems: list[Problem] = []
    for n, line in enumerate(split_lines(text)):
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        lineno = first_line + n
        loc = Location.model_construct(file=file, line=lineno)
        if not strict:
            s = _PROMPT.sub("", s)
            if mentions_sysctl(s) and not looks_like_sysctl(s.split("=", 1)[0].strip().lstrip("-")):
                a, p = parse_script(s, file, _const_line(lineno))
                if not a:  # e.g. a YAML or JSON line: the command is inside a quoted string
                    for quoted in _QUOTED.findall(s):
                        qa, qp = parse_script(quoted[0] or quoted[1], file, _const_line(lineno))
                        a, p = a + qa, p + qp
                out += a
                problems += p
                continue
        a1, p1 = _assignment(s, loc, syntax, strict=strict)
        if a1:
            out.append(a1)
        if p1:
            problems.append(p1)
    return out, problems


def parse_markdown(text: str, file: str) -> tuple[list[Assignment], list[Problem]]:
    """Markdown notes: `key = value` and `sysctl -w` lines, in or out of code fences (fences skipped)."""
    lines = split_lines(text)
    kept = ["" if _FENCE.match(line) else line for line in lines]
    return parse_sysctl_conf("\n".join(kept), file, strict=False, syntax="sysctl.conf")


def is_tuned(text: str) -> bool:
    sections = {m.group(1).strip().lower() for m in map(_SECTION.match, split_lines(text)) if m}
    return "sysctl" in sections or ("main" in sections and bool(sections - {"main"}))


def parse_tuned(text: str, file: str, first_line: int = 1) -> tuple[list[Assignment], list[Problem], list[str]]:
    """A tuned profile: only the [sysctl] section sets sysctls; tuned strips `#` inline comments."""
    out: list[Assignment] = []
    notes: list[str] = []
    section = None
    for n, line in enumerate(split_lines(text)):
        m = _SECTION.match(line)
        if m:
            section = m.group(1).strip().lower()
            continue
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        if section == "main" and s.replace(" ", "").startswith("include="):
            notes.append(
                f"{file}: tuned profile includes {s.split('=', 1)[1].strip()[:80]} (not read: its "
                "settings apply first and this profile overrides them)"
            )
        if section != "sysctl" or "=" not in s:
            continue
        raw_key, _, value = s.partition("=")
        # Python's configparser with inline_comment_prefixes=('#',) (tuned/profiles/loader.py) drops ' #...';
        # the sysctl plugin then strips one pair of surrounding double quotes (tuned/utils/commands.py
        # unquote(): re.sub('^"(.*)"$', ...), since efac9c4, tuned 2.6.0). Single quotes stay literal.
        value = re.sub(r"\s+#.*$", "", value).strip()
        value = re.sub(r'^"(.*)"$', r"\1", value)
        key = normalize_key(raw_key.strip().lstrip("-"))
        if key and value and not _BLANK.search(key):
            out.append(
                Assignment(
                    key=key,
                    value=value,
                    location=Location.model_construct(file=file, line=first_line + n),
                    raw_key=raw_key.strip(),
                    syntax="tuned",
                )
            )
    return out, [], notes


def find_directives(text: str, file: str, assignments: Iterable[Assignment]) -> tuple[list[InlineIgnore], list[str]]:
    """`# tcpaudit: ignore[RULE,...] reason` on a key's line, or alone on the line(s) just before it."""
    lines = split_lines(text)
    by_line: dict[int, list[Assignment]] = {}
    for a in assignments:
        if a.location.file == file and a.location.line:
            by_line.setdefault(a.location.line, []).append(a)
    ignores: list[InlineIgnore] = []
    notes: list[str] = []
    for n, line in enumerate(lines, 1):
        m = _DIRECTIVE.search(line)
        if not m or not re.search(r"(#|;|//)\s*tcpaudit:", line, re.IGNORECASE):
            continue
        rules = frozenset(r.strip().upper() for r in m.group(1).split(",") if r.strip())
        reason = m.group(2).strip().rstrip("*/").strip()
        target = n
        if n not in by_line:  # alone on its line: the next line that is not a comment
            target = n + 1
            while target <= len(lines) and lines[target - 1].strip().startswith(("#", ";", "//")):
                target += 1
        if target not in by_line:
            notes.append(f"{file}:{n}: `tcpaudit: ignore` is not on or just before a sysctl setting; ignored")
            continue
        if not rules:
            notes.append(f"{file}:{n}: `tcpaudit: ignore[]` names no rule; ignored")
            continue
        if not reason:
            notes.append(
                f"{file}:{n}: `tcpaudit: ignore[{','.join(sorted(rules))}]` has no reason; not honoured "
                "(write the reason after the bracket)"
            )
            continue
        ignores.append(
            InlineIgnore(
                rules=rules,
                reason=reason,
                location=Location.model_construct(file=file, line=target),
                directive=Location.model_construct(file=file, line=n),
            )
        )
    return ignores, notes


def _const_line(line: int) -> Callable[[int], int]:
    """A `line_for` for parse_script that puts every command of a one-line script on that file line."""
    return lambda _i: line
