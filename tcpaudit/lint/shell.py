"""`sysctl -w k=v` and `echo v > /proc/sys/...` inside shell text: command lists, init containers, tasks.

The shell splits words before sysctl sees them, so `sysctl -w key=1 2` writes "1" and then
fails on "2"; the parser records that instead of guessing what the author meant.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from dataclasses import replace

from ..model import Location
from .keys import normalize_key, proc_path_to_key
from .model import Assignment, Problem

_SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", ";;"}
_WRAPPERS = {"sudo", "exec", "command", "busybox", "nsenter", "env", "doas", "chroot"}
_MENTIONS = re.compile(r"\bsysctl\b|/proc/sys/")
SYNTAX = "sysctl -w"


def mentions_sysctl(text: str) -> bool:
    return bool(_MENTIONS.search(text))


def _logical_lines(script: str) -> list[tuple[int, str]]:
    """(0-based index of the first physical line, text) with backslash continuations joined."""
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for i, line in enumerate(script.split("\n")):
        line = line.rstrip("\r")
        if not buf:
            start = i
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        out.append((start, buf + line))
        buf = ""
    if buf:
        out.append((start, buf))
    return out


def _words(text: str) -> list[str] | None:
    lex = shlex.shlex(text, posix=True, punctuation_chars=";&|()<>")
    lex.whitespace_split = True
    lex.commenters = ""
    try:
        words = list(lex)
    except ValueError:  # unbalanced quotes
        return None
    # a shell comment starts at a word that begins with '#'
    for i, w in enumerate(words):
        if w.startswith("#"):
            return words[:i]
    return words


def _commands(words: list[str]) -> list[list[str]]:
    cmds: list[list[str]] = []
    cur: list[str] = []
    for w in words:
        if w in _SEPARATORS:
            if cur:
                cmds.append(cur)
            cur = []
        else:
            cur.append(w)
    if cur:
        cmds.append(cur)
    return cmds


def _strip_wrappers(cmd: list[str]) -> list[str]:
    i = 0
    while i < len(cmd):
        w = cmd[i]
        if os.path.basename(w) in _WRAPPERS or re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", w) or w in ("$", "#"):
            i += 1
            if w in ("nsenter", "sudo", "doas") or os.path.basename(w) in ("nsenter", "sudo", "doas"):
                while i < len(cmd) and cmd[i].startswith("-"):
                    i += 1
            continue
        break
    return cmd[i:]


def sysctl_argv(args: list[str], loc: Location) -> tuple[list[Assignment], list[Problem]]:
    """The arguments after `sysctl`, as procps sysctl(8) reads them."""
    out: list[Assignment] = []
    problems: list[Problem] = []
    write = ignore = False
    for arg in args:
        if arg.startswith("-") and "=" not in arg:
            if arg in ("--write",) or (not arg.startswith("--") and "w" in arg[1:]):
                write = True
            if arg in ("--ignore",) or (not arg.startswith("--") and "e" in arg[1:]):
                ignore = True
            if arg in ("-p", "--load", "--system", "-a", "--all", "-A", "-X") or arg.startswith(("-p", "--load=")):
                break  # loads files or lists keys: nothing written here
            continue
        if "=" in arg:
            raw_key, _, value = arg.partition("=")
            out.append(
                Assignment(
                    key=normalize_key(raw_key),
                    value=value.strip(),
                    location=loc,
                    raw_key=raw_key,
                    ignore_errors=ignore,
                    syntax=SYNTAX,
                )
            )
        elif write:
            if out and out[-1].location == loc:
                prev = out[-1]
                note = ((prev.note + "; ") if prev.note else "") + (
                    f"the shell passed {arg!r} to sysctl as a separate argument (the value was not quoted), so "
                    f"only {prev.value!r} is written and sysctl fails on {arg!r}"
                )
                out[-1] = replace(prev, note=note)
            else:
                problems.append(
                    Problem(
                        "syntax",
                        f"`sysctl -w {arg}` is not of the form key=value; sysctl rejects it",
                        loc,
                        (normalize_key(arg),),
                    )
                )
    return out, problems


def _echo_to_proc(cmd: list[str], loc: Location) -> Assignment | None:
    if not cmd or os.path.basename(cmd[0]) not in ("echo", "printf") or ">" not in cmd:
        return None
    i = cmd.index(">")
    if i + 1 >= len(cmd):
        return None
    key = proc_path_to_key(cmd[i + 1])
    if key is None:
        return None
    words = [w for w in cmd[1:i] if not (cmd[0].endswith("echo") and w in ("-n", "-e", "-ne", "-en"))]
    return Assignment(key=key, value=" ".join(words), location=loc, raw_key=cmd[i + 1], syntax=SYNTAX)


def parse_script(
    script: str, file: str, line_for: Callable[[int], int] = lambda i: i + 1
) -> tuple[list[Assignment], list[Problem]]:
    """Every sysctl write in a shell script; `line_for` maps a 0-based script line to a file line."""
    out: list[Assignment] = []
    problems: list[Problem] = []
    for idx, text in _logical_lines(script):
        if not mentions_sysctl(text):
            continue
        words = _words(text.strip())
        if words is None:
            continue
        loc = Location(file=file, line=line_for(idx))
        a, p = parse_words(words, loc)
        out += a
        problems += p
    return out, problems


def parse_words(words: list[str], loc: Location) -> tuple[list[Assignment], list[Problem]]:
    out: list[Assignment] = []
    problems: list[Problem] = []
    for cmd in _commands(words):
        cmd = _strip_wrappers(cmd)
        if not cmd:
            continue
        if os.path.basename(cmd[0]) == "sysctl":
            a, p = sysctl_argv(cmd[1:], loc)
            out += a
            problems += p
        elif (echo := _echo_to_proc(cmd, loc)) is not None:
            out.append(echo)
    return out, problems
