"""Destinations and the ssh config for the SSH collector (tcpaudit/collect/ssh.py): what a host, user and port
may be, `[user@]host[:port]` parsing, reading ~/.ssh/config (Include inlined, `Match exec` refused) and
looking hosts up in it (ConfigIndex). Nothing here opens a connection.
"""

from __future__ import annotations

import getpass
import glob
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

import paramiko

from ..sanitize import clean_text


class SSHSetupError(ValueError):
    """A problem with the local SSH setup or a destination (usage error, exit 2)."""


class DestinationError(SSHSetupError):
    """Something that cannot be a host, user or port."""


# ---- destinations ------------------------------------------------------------------------------------
_HOST_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,252})")
_USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}\$?")


def _bad_chars(text: str) -> bool:
    return any(c.isspace() or ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in text)


def validate_host(host: str, what: str = "host") -> str:
    if not host:
        raise DestinationError(f"empty {what} name")
    shown = clean_text(host, 80)
    if host.startswith("-"):
        raise DestinationError(f"{what} '{shown}' starts with '-': not a host name")
    if _bad_chars(host):
        raise DestinationError(f"{what} '{shown}' contains whitespace or control characters")
    if ":" in host:
        addr, pct, scope = host.partition("%")
        try:
            ipaddress.IPv6Address(addr)
        except ValueError:
            raise DestinationError(f"{what} '{shown}' is not a host name or an IPv6 address") from None
        if pct and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", scope):
            raise DestinationError(f"{what} '{shown}': the IPv6 scope is not an interface name or number")
        return host
    if not _HOST_RE.fullmatch(host):
        raise DestinationError(f"{what} '{shown}' contains characters that cannot be in a host name")
    return host


def validate_user(user: str) -> str:
    shown = clean_text(user, 80)
    if not user:
        raise DestinationError("empty user name")
    if user.startswith("-"):
        raise DestinationError(f"user '{shown}' starts with '-'")
    if _bad_chars(user) or not _USER_RE.fullmatch(user):
        raise DestinationError(f"user '{shown}' contains characters that cannot be in a user name")
    return user


def validate_port(port: int | str) -> int:
    text = str(port)
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise DestinationError(f"port {clean_text(text, 20)!r} is not a number from 1 to 65535")
    return int(text)


@dataclass(frozen=True)
class Destination:
    """One host to audit. `name` is what reports show (and what a fleet dedupes on)."""

    name: str
    host: str  # looked up in the ssh config (an alias or a real name)
    user: str | None = None
    port: int | None = None
    group: str | None = None


def display_name(host: str, port: int | None) -> str:
    name = host.lower().rstrip(".") if ":" not in host else host.lower()
    if port and port != 22:
        return f"[{name}]:{port}" if ":" in name else f"{name}:{port}"
    return name


def parse_destination(
    text: str, *, user: str | None = None, port: int | None = None, group: str | None = None, name: str | None = None
) -> Destination:
    """`[user@]host[:port]`, `[user@][v6addr]:port`, `v6addr`, or `ssh://[user@]host[:port]`."""
    if not isinstance(text, str) or not text:
        raise DestinationError("empty destination")
    if text.startswith("-"):
        raise DestinationError(f"destination '{clean_text(text, 80)}' starts with '-': not a host name")
    if _bad_chars(text):
        raise DestinationError(f"destination '{clean_text(text, 80)}' contains whitespace or control characters")
    rest = text[len("ssh://") :] if text.startswith("ssh://") else text
    rest = rest.rstrip("/") if text.startswith("ssh://") else rest
    d_user = None
    if "@" in rest:
        d_user, _, rest = rest.rpartition("@")
        validate_user(d_user)
    d_port: int | None = None
    if rest.startswith("["):
        host, sep, tail = rest[1:].partition("]")
        if not sep:
            raise DestinationError(f"destination '{clean_text(text, 80)}': missing ']'")
        if tail:
            if not tail.startswith(":"):
                raise DestinationError(f"destination '{clean_text(text, 80)}': junk after ']'")
            d_port = validate_port(tail[1:])
    elif rest.count(":") == 1:
        host, _, p = rest.partition(":")
        d_port = validate_port(p)
    else:
        host = rest
    validate_host(host)
    if port is not None:
        port = validate_port(port)
    if user is not None:
        validate_user(user)
    final_port = d_port or port
    return Destination(
        name=name or display_name(host, final_port), host=host, user=d_user or user, port=final_port, group=group
    )


# ---- ssh config ----------------------------------------------------------------------------------------
_INCLUDE_RE = re.compile(r"^\s*include(?:\s*=\s*|\s+)(.+?)\s*$", re.I)
_BLOCK_RE = re.compile(r"^\s*(host|match)(?:\s*=\s*|\s+)(.*)$", re.I)


def _expand_includes(path: Path, depth: int = 0) -> str:
    """Inline `Include` files (globs, ~, relative to ~/.ssh), which paramiko does not handle itself."""
    if depth > 16:
        raise SSHSetupError(f"{path}: Include nested too deeply")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise SSHSetupError(f"cannot read ssh config {path}: {exc.strerror or exc}") from None
    out: list[str] = []
    block_header: str | None = None
    for line in text.splitlines():
        b = _BLOCK_RE.match(line)
        if b:
            if b.group(1).lower() == "match" and re.search(r"(^|\s)!?exec(\s|$)", b.group(2), re.I):
                raise SSHSetupError(f"{path}: 'Match exec' is not supported (tcpaudit runs no local commands)")
            block_header = line
        m = _INCLUDE_RE.match(line)
        if not m:
            out.append(line)
            continue
        inner_has_blocks = False
        for pattern in m.group(1).split():
            pattern = os.path.expanduser(pattern.strip('"'))
            if not os.path.isabs(pattern):
                pattern = os.path.join(os.path.expanduser("~/.ssh"), pattern)
            for inc in sorted(glob.glob(pattern)):
                inner = _expand_includes(Path(inc), depth + 1)
                inner_has_blocks = inner_has_blocks or any(_BLOCK_RE.match(x) for x in inner.splitlines())
                out.append(inner)
        if inner_has_blocks and block_header is not None:
            out.append(block_header)  # lines after the Include still belong to the including block
    return "\n".join(out) + "\n"


def load_ssh_config(path: Path | None) -> paramiko.SSHConfig:
    if path is None:
        default = Path(os.path.expanduser("~/.ssh/config"))
        if not default.is_file():
            return paramiko.SSHConfig.from_text("")
        path = default
    elif str(path) == os.devnull:  # `ssh -F /dev/null`: no configuration at all
        return paramiko.SSHConfig.from_text("")
    elif not Path(path).is_file():
        raise SSHSetupError(f"ssh config {path} does not exist or is not a file")
    try:
        return paramiko.SSHConfig.from_text(_expand_includes(Path(path)))
    except paramiko.ConfigParseError as exc:
        raise SSHSetupError(f"ssh config {path}: {exc}") from None


def concrete_config_hosts(config: paramiko.SSHConfig) -> list[str]:
    """Host patterns without wildcards or negation, in file order (for --ssh-config-hosts)."""
    out: list[str] = []
    for entry in config._config:  # type: ignore[attr-defined]  # noqa: SLF001 - paramiko keeps no public ordered list
        for h in entry.get("host", []):
            if any(c in h for c in "*?!") or h in out:
                continue
            out.append(h)
    return out


_PATTERN_CHARS = frozenset("*?[!")


class ConfigIndex:
    """`paramiko.SSHConfig.lookup` at a cost independent of the number of Host blocks.

    paramiko tries every block of the file for every lookup (and twice: a first and a final pass), which made
    a 1,000-host sweep with one `Host` block per host quadratic: ~15-35 ms of CPU per lookup at 1,000 blocks.
    A block whose Host patterns are all plain names (no `*`, `?`, `[`, `!`) can only apply to exactly those
    names, so a lookup only needs those blocks plus the others (patterns, Match), in file order; paramiko
    then does the lookup itself on that shorter list, with identical results. With CanonicalizeHostname
    anywhere in the file (the looked-up name can change mid-lookup) every lookup uses the whole file.
    """

    def __init__(self, config: paramiko.SSHConfig):
        self.config = config
        contexts = config._config  # type: ignore[attr-defined]  # noqa: SLF001 - paramiko keeps no public list of its blocks
        self._by_name: dict[str, list[int]] = {}
        self._always: list[int] = []
        self._whole_file = False
        for i, ctx in enumerate(contexts):
            if "canonicalizehostname" in ctx.get("config", {}):
                self._whole_file = True
            hosts = ctx.get("host")
            if ctx.get("matches") or not isinstance(hosts, list) or not hosts:
                self._always.append(i)
            elif any(_PATTERN_CHARS.intersection(h) for h in hosts):
                self._always.append(i)
            else:
                for h in dict.fromkeys(hosts):
                    self._by_name.setdefault(h, []).append(i)

    def lookup(self, alias: str) -> paramiko.config.SSHConfigDict:
        if self._whole_file:
            return self.config.lookup(alias)
        contexts = self.config._config  # type: ignore[attr-defined]  # noqa: SLF001
        sub = paramiko.SSHConfig()
        sub._config = [contexts[i] for i in sorted(self._always + self._by_name.get(alias, []))]  # type: ignore[attr-defined]  # noqa: SLF001
        return sub.lookup(alias)


def _expand_path(value: str, cfg_host: str = "") -> str:
    home = os.path.expanduser("~")
    value = value.replace("%%", "\0").replace("%d", home).replace("%u", getpass.getuser())
    value = value.replace("%h", cfg_host).replace("\0", "%")
    return os.path.expanduser(value)
