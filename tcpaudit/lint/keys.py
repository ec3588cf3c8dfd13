"""Sysctl key names as sysctl.d(5) reads them."""

from __future__ import annotations

import re

_SWAP = str.maketrans("./", "/.")
# Top-level /proc/sys directories; used only where a key must be told apart from other text
# (YAML mappings, Markdown prose). sysctl.conf files accept any key.
_TOP = ("abi", "crypto", "debug", "dev", "fs", "kernel", "net", "sunrpc", "user", "vm")
_SYSCTL_LIKE = re.compile(r"^-?(?:{})[./][A-Za-z0-9_.:/*?\[\]-]+$".format("|".join(_TOP)))


def normalize_key(raw: str) -> str:
    """`net/ipv4/conf/eth0.100/rp_filter` -> `net.ipv4.conf.eth0/100.rp_filter`.

    sysctl.d(5): if the first separator is a slash, slashes and dots are interchanged;
    if it is a dot, the name is left as it is.
    """
    key = raw.strip()
    m = re.search(r"[./]", key)
    if m and m.group() == "/":
        key = key.strip("/").translate(_SWAP)
    return key


def looks_like_sysctl(text: str) -> bool:
    return bool(_SYSCTL_LIKE.match(text.strip()))


def proc_path_to_key(path: str) -> str | None:
    """`/proc/sys/net/ipv4/tcp_tw_recycle` -> `net.ipv4.tcp_tw_recycle`."""
    prefix = "/proc/sys/"
    if not path.startswith(prefix):
        return None
    rest = path[len(prefix) :].strip("/")
    return normalize_key(rest) if rest else None
