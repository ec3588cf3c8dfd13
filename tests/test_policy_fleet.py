"""A 13-host SSH fleet judged against a policy: exactly the 3 deviating hosts are reported, per inventory group.

Every host is a real sshd on loopback whose ForceCommand runs the collector (sent on stdin, as always) inside a
network namespace `ta-policy-<pid>-f<n>` of its own, so each host has its own per-namespace sysctls, set with
`sysctl -w` inside it. Nothing of the root namespace is changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sshd  # noqa: E402  (tests/sshd.py: shared helpers)

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.skipif(not sshd.have_sshd(), reason="OpenSSH server (/usr/sbin/sshd) not installed"),
    pytest.mark.skipif(not sshd.have_netns() or shutil.which("ip") is None, reason="needs root and `ip netns`"),
]

GROUPS = {"web": 6, "db": 4, "cache": 3}
BASE = {"net.ipv4.tcp_keepalive_time": "600", "net.ipv4.tcp_fin_timeout": "30"}
# the three deviations: the fleet default on a host of the wrong group counts too
DEVIATING = {
    "web03": {"net.ipv4.tcp_keepalive_time": "7200"},
    "db01": {"net.ipv4.tcp_keepalive_time": "600"},  # the fleet value, but [policy.group.db] says 300
    "cache02": {"net.ipv4.tcp_fin_timeout": "90"},
}
POLICY = """
[policy]
reason = "fleet standard NET-7: keepalive below the 900 s LB idle timeout"
"net.ipv4.tcp_keepalive_time" = 600
"net.ipv4.tcp_fin_timeout" = { expect = "<= 60", reason = "orphaned FIN-WAIT-2 sockets", severity = "high" }

[policy.group.db]
"net.ipv4.tcp_keepalive_time" = { expect = 300, reason = "the DB proxy drops idle flows after 400 s" }
"""


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, stdin=subprocess.DEVNULL)


@pytest.fixture
def fleet(tmp_path: Path):  # type: ignore[no-untyped-def]
    keys = sshd.make_keys(tmp_path)
    names = [f"{g}{i:02d}" for g, n in GROUPS.items() for i in range(n)]
    namespaces: list[str] = []
    servers: list[sshd.SSHServer] = []
    try:
        for n, name in enumerate(names):
            ns = f"ta-policy-{os.getpid() % 100000}-f{n}"
            _ip("netns", "add", ns)
            namespaces.append(ns)
            values = dict(BASE)
            if name.startswith("db"):
                values["net.ipv4.tcp_keepalive_time"] = "300"
            values.update(DEVIATING.get(name, {}))
            for k, v in values.items():
                _ip("netns", "exec", ns, "sysctl", "-qw", f"{k}={v}")
            servers.append(
                sshd.SSHServer(
                    tmp_path,
                    keys,
                    name=name,
                    force_command=f"{shutil.which('ip')} netns exec {ns} {shutil.which('sh')} -s",
                )
            )
        for s in servers:
            s.start(wait=False)
        for s in servers:
            s.wait_ready()
        with open(keys.known_hosts, "a") as f:
            for s in servers:
                f.write(s.known_line())
        cfg = tmp_path / "ssh_config"
        cfg.write_text(
            "".join(
                f"Host {s.name}\n  HostName {s.address}\n  Port {s.port}\n  User {sshd.login_user()}\n" for s in servers
            )
            + f"Host *\n  IdentityFile {keys.client_key}\n  UserKnownHostsFile {keys.known_hosts}\n"
        )
        inv = tmp_path / "hosts.txt"
        inv.write_text("".join(f"[{g}]\n" + "".join(f"{g}{i:02d}\n" for i in range(n)) for g, n in GROUPS.items()))
        yield cfg, inv, keys
    finally:
        for s in servers:
            s.stop()
        for ns in namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_policy_fleet_reports_exactly_the_three_deviating_hosts(fleet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg, inv, keys = fleet
    pol = tmp_path / "policy.toml"
    pol.write_text(POLICY)
    out = tmp_path / "fleet.json"
    p = sshd.run_tcpaudit(
        [
            "fleet",
            "--inventory",
            str(inv),
            "--ssh-config",
            str(cfg),
            "--known-hosts",
            str(keys.known_hosts),
            "--policy",
            str(pol),
            "--connect-timeout",
            "20",
            "--command-timeout",
            "60",
            "--jobs",
            "6",
            "-f",
            f"json:{out}",
            "-f",
            "table",
        ],  # fmt: skip
        timeout=300,
    )
    assert p.returncode == 1, p.stderr  # a high-severity deviation (fin_timeout) gates the run
    report = json.loads(out.read_text())
    assert [t["status"] for t in report["targets"]] == ["ok"] * 13, [(t["name"], t["error"]) for t in report["targets"]]
    summary = report["extra"]["fleet"]["policy"]
    assert summary["hosts_deviating"] == 3 and summary["of"] == 13
    assert summary["hosts"] == ["cache02", "db01", "web03"]
    assert summary["by_group"] == {
        "web": {"deviating": 1, "of": 6},
        "db": {"deviating": 1, "of": 4},
        "cache": {"deviating": 1, "of": 3},
    }
    by_host = {t["name"]: [f for f in t["findings"] if f["rule"] == "POL001"] for t in report["targets"]}
    assert {h for h, fs in by_host.items() if fs} == set(DEVIATING)
    (web,) = by_host["web03"]
    assert (web["evidence"]["actual"], web["evidence"]["declared"], web["severity"]) == ("7200", "600", "medium")
    (db,) = by_host["db01"]
    assert (db["evidence"]["declared"], db["evidence"]["group"]) == ("300", "db")
    assert "the DB proxy drops idle flows" in db["explanation"]
    (cache,) = by_host["cache02"]
    assert (cache["evidence"]["actual"], cache["severity"]) == ("90", "high")
    assert report["extra"]["fleet"]["by_rule"]["POL001"]["hosts"] == 3
    table = p.stdout.decode()
    assert "Policy: hosts deviating: 3 of 13 (cache: 1 of 3, db: 1 of 4, web: 1 of 6)" in table
