"""Persisted vs running (CFG001) on a real kernel with a real /etc/sysctl.d tree.

Each test creates a network namespace `ta-policy-<pid>-<n>` (its own per-namespace sysctls, set with
`sysctl -w` inside it) and runs tcpaudit inside it and inside a private mount namespace (`unshare --mount`)
in which a temporary tree is bind-mounted over /etc/sysctl.d, /usr/lib/sysctl.d and /etc/sysctl.conf. The
root namespace's sysctls and files are never touched. Both collectors run there: `tcpaudit host` (the local
reader) and the shell collector (`sh collector.sh`, as over SSH), and both must give the same persisted view.
`sysctl --system` (procps-ng) applied in the same namespaces checks the precedence against the real tool.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
_counter = itertools.count()

# the system paths the tree replaces, when they exist on this machine (each bound once: /lib may be /usr/lib)
_BINDS = [("etc/sysctl.d", "/etc/sysctl.d"), ("usr/lib/sysctl.d", "/usr/lib/sysctl.d")]


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network and mount namespaces)"
    for tool in ("ip", "unshare", "mount", "sysctl"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    if not os.path.isdir("/etc/sysctl.d") or not os.path.isfile("/etc/sysctl.conf"):
        return "this machine has no /etc/sysctl.d or /etc/sysctl.conf to bind a test tree over"
    return None


pytestmark = pytest.mark.skipif(_unavailable() is not None, reason=_unavailable() or "")


class Host:
    """A network namespace plus a sysctl tree bound over the system paths for every command run in it."""

    def __init__(self, tmp: Path):
        self.name = f"ta-policy-{os.getpid() % 100000}-{next(_counter)}"
        self.tree = tmp / "root"
        for rel, _ in _BINDS:
            (self.tree / rel).mkdir(parents=True)
        (self.tree / "etc" / "sysctl.conf").write_text("# test tree\n")
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        self.exec(["ip", "link", "set", "lo", "up"])

    def write(self, rel: str, text: str) -> None:
        p = self.tree / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    def _wrap(self, argv: list[str]) -> list[str]:
        binds = [(str(self.tree / rel), dst) for rel, dst in _BINDS if os.path.isdir(dst)]
        binds.append((str(self.tree / "etc" / "sysctl.conf"), "/etc/sysctl.conf"))
        script = " && ".join(f'mount --bind "${i * 2 + 1}" "${i * 2 + 2}"' for i in range(len(binds)))
        script += f' && shift {2 * len(binds)} && exec "$@"'
        flat = [x for pair in binds for x in pair]
        return ["ip", "netns", "exec", self.name, "unshare", "--mount", "--propagation", "private",
                "sh", "-c", script, "sh", *flat, *argv]  # fmt: skip

    def exec(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
        p = subprocess.run(
            ["ip", "netns", "exec", self.name, *argv], capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
        if check and p.returncode != 0:
            raise RuntimeError(f"{argv}: {p.stderr}")
        return p

    def run(self, argv: list[str]) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        return subprocess.run(
            self._wrap(argv), capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env, timeout=120
        )

    def set(self, **values: str | int) -> None:
        for k, v in values.items():
            self.exec(["sysctl", "-qw", f"{k.replace('__', '.')}={v}"])

    def audit(self, *extra: str) -> dict[str, Any]:
        p = self.run([sys.executable, "-m", "tcpaudit", "host", "-f", "json", *extra])
        assert p.returncode in (0, 1), p.stderr
        (target,) = json.loads(p.stdout)["targets"]
        return target  # type: ignore[no-any-return]

    def snapshot(self) -> dict[str, Any]:
        p = self.run([sys.executable, "-m", "tcpaudit", "snapshot", "-o", "-"])
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)  # type: ignore[no-any-return]

    def dump_snapshot(self, tmp: Path) -> dict[str, Any]:
        """The shell collector run in the same namespaces (as `sh -s` over SSH does), then read like a dump."""
        script = tmp / "collector.sh"
        script.write_text((ROOT / "tcpaudit" / "collect" / "collector.sh").read_text())
        p = self.run(["sh", str(script)])
        assert p.returncode == 0, p.stderr
        dump = tmp / "dump.txt"
        dump.write_text(p.stdout)
        from tcpaudit.collect.dump import snapshot_from_dump

        return json.loads(snapshot_from_dump(dump.read_bytes(), "dump").model_dump_json())  # type: ignore[no-any-return]

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    h = Host(tmp_path)
    try:
        yield h
    finally:
        h.delete()


def cfg001(target: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """CFG001 findings by (kind, key)."""
    return {f"{f['evidence']['kind']}:{f['evidence']['key']}": f for f in target["findings"] if f["rule"] == "CFG001"}


def test_clean_host_applied_with_sysctl_system(host: Host) -> None:
    host.write("usr/lib/sysctl.d/50-vendor.conf", "net.ipv4.tcp_fin_timeout = 30\n")
    host.write("etc/sysctl.d/90-lb.conf", "net.ipv4.tcp_keepalive_time = 120\nnet.ipv4.tcp_keepalive_intvl=30\n")
    applied = host.run(["sysctl", "--system"])
    assert applied.returncode == 0, applied.stderr
    target = host.audit("--nat-idle-timeout", "240")
    assert cfg001(target) == {}
    (check,) = [c for c in target["checks"] if c["rule"] == "CFG001"]
    assert check["outcome"] == "pass"
    assert not [f for f in target["findings"] if f["rule"] == "NAT001"]


def test_live_only_reverts_at_reboot(host: Host) -> None:
    host.set(net__ipv4__tcp_keepalive_time=120)  # a live fix, never written to a file
    found = cfg001(host.audit("--nat-idle-timeout", "240"))
    assert set(found) == {"live_only:net.ipv4.tcp_keepalive_time"}, found
    f = found["live_only:net.ipv4.tcp_keepalive_time"]
    assert f["evidence"]["running"] == "120" and f["evidence"]["default"] == "7200"
    assert "reverts to the kernel default 7200" in f["explanation"]
    assert "NAT001 does not fire now but will after reboot" in f["explanation"]


def test_persisted_only_not_applied_yet(host: Host) -> None:
    host.write("etc/sysctl.d/90-lb.conf", "# written, never applied\nnet.ipv4.tcp_keepalive_time = 120\n")
    target = host.audit("--nat-idle-timeout", "240")
    found = cfg001(target)
    assert set(found) == {"running_differs:net.ipv4.tcp_keepalive_time"}, found
    f = found["running_differs:net.ipv4.tcp_keepalive_time"]
    assert f["evidence"]["persisted_at"] == "/etc/sysctl.d/90-lb.conf:2"
    assert f["evidence"]["running"] == "7200" and f["evidence"]["persisted"] == "120"
    assert "NAT001 fires now and stops after reboot" in f["explanation"]
    assert [x for x in target["findings"] if x["rule"] == "NAT001"]


def test_refused_values_and_keys(host: Host) -> None:
    host.write(
        "etc/sysctl.d/50-bad.conf",
        "net.ipv4.ip_local_port_range = 60999 32768\nnet.ipv4.tcp_tw_recycle = 0\n-net.ipv4.tcp_bogus_optional = 1\n",
    )
    # the kernel itself refuses both: the range with EINVAL, the removed key does not exist
    assert host.exec(["sysctl", "-w", "net.ipv4.ip_local_port_range=60999 32768"], check=False).returncode != 0
    assert host.exec(["sysctl", "-w", "net.ipv4.tcp_tw_recycle=0"], check=False).returncode != 0
    found = cfg001(host.audit())
    assert set(found) == {
        "persisted_refused:net.ipv4.ip_local_port_range",
        "persisted_refused:net.ipv4.tcp_tw_recycle",
    }, found
    assert (
        "low port 60999 is above high port 32768"
        in found["persisted_refused:net.ipv4.ip_local_port_range"]["explanation"]
    )
    assert "removed in 4.12" in found["persisted_refused:net.ipv4.tcp_tw_recycle"]["explanation"]


def test_shadowed_and_hidden_files_match_procps(host: Host, tmp_path: Path) -> None:
    host.write("usr/lib/sysctl.d/50-vendor.conf", "net.ipv4.tcp_fin_timeout = 30\nnet.ipv4.tcp_keepalive_intvl = 60\n")
    host.write("usr/lib/sysctl.d/60-hidden.conf", "net.ipv4.tcp_keepalive_probes = 3\n")
    host.write("etc/sysctl.d/60-hidden.conf", "net.ipv4.tcp_keepalive_probes = 5\n")  # same name: hides the vendor one
    host.write(
        "etc/sysctl.d/99-local.conf", "net.ipv4.tcp_fin_timeout = 45\nnet.ipv4.ip_local_port_range = 20000\t  61000\n"
    )
    host.write("etc/sysctl.conf", "net.ipv4.tcp_keepalive_intvl = 0075\n")  # applied last; octal 075 = 61
    applied = host.run(["sysctl", "--system"])
    assert applied.returncode == 0, applied.stderr
    local = host.snapshot()
    persisted = local["persisted"]
    # what procps applied is exactly what tcpaudit computed as effective
    for key, s in persisted["settings"].items():
        from tcpaudit.policy import same_value

        assert same_value(s["value"], local["sysctls"][key]), (key, s, local["sysctls"][key])
    assert local["sysctls"]["net.ipv4.tcp_keepalive_intvl"] == "61"
    assert persisted["settings"]["net.ipv4.tcp_keepalive_probes"]["file"] == "/etc/sysctl.d/60-hidden.conf"
    assert any("/usr/lib/sysctl.d/60-hidden.conf is not read" in n for n in persisted["notes"])
    found = cfg001(host.audit())
    assert set(found) == {
        "persisted_shadowed:net.ipv4.tcp_fin_timeout",
        "persisted_shadowed:net.ipv4.tcp_keepalive_intvl",
    }
    f = found["persisted_shadowed:net.ipv4.tcp_fin_timeout"]
    assert f["severity"] == "low"
    assert f["evidence"]["shadowed_at"] == "/usr/lib/sysctl.d/50-vendor.conf:1"
    assert f["evidence"]["effective_at"] == "/etc/sysctl.d/99-local.conf:1"
    # the shell collector (the SSH path) reads the same files into the same view
    remote = host.dump_snapshot(tmp_path)["persisted"]
    assert remote == persisted


def test_lint_root_and_persisted_agree(host: Host) -> None:
    """The same tree through `tcpaudit lint --root` (lint/files.py) and the persisted reader: same effective values."""
    host.write("usr/lib/sysctl.d/50-vendor.conf", "net.ipv4.tcp_fin_timeout = 30\n")
    host.write("usr/lib/sysctl.d/70-x.conf", "net.ipv4.tcp_keepalive_time = 300\n")
    host.write("etc/sysctl.d/70-x.conf", "net.ipv4.tcp_keepalive_time = 600\n")
    host.write("etc/sysctl.conf", "net.ipv4.tcp_fin_timeout = 20\n")
    persisted = host.snapshot()["persisted"]
    from tcpaudit.audit import AuditOptions
    from tcpaudit.lint import config_facts, root_unit

    facts, _ = config_facts(root_unit(host.tree), AuditOptions())
    effective = {k: v for k, (v, _loc) in facts.configured.items()}
    assert {k: s["value"] for k, s in persisted["settings"].items()} == effective
    assert effective["net.ipv4.tcp_keepalive_time"] == "600" and effective["net.ipv4.tcp_fin_timeout"] == "20"
