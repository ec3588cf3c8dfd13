"""`tcpaudit fleet`: inventories, a 20-host sweep against real sshd servers, drift, Ctrl-C, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sshd  # noqa: E402  (tests/sshd.py: shared helpers, imported explicitly)

from tcpaudit.collect.ssh import parse_destination  # noqa: E402
from tcpaudit.fleet import (  # noqa: E402
    InventoryError,
    dedupe,
    drift,
    parse_ansible_json,
    parse_host_list,
)
from tcpaudit.model import Report  # noqa: E402
from tcpaudit.reporters.fleet_view import render_fleet  # noqa: E402

needs_sshd = pytest.mark.skipif(not sshd.have_sshd(), reason="OpenSSH server (/usr/sbin/sshd) not installed")
USER = sshd.login_user()
# Short enough that hung hosts end quickly, long enough that 20 hosts at once (paramiko key exchanges in one
# Python process) on 2 cores shared with other work still connect.
CONNECT_T = 10.0
COMMAND_T = 30.0


# ---- inventories (no SSH) ------------------------------------------------------------------------------
def test_plain_host_list():
    text = """
# web tier
web1
deploy@web2:2222   # trailing comment
[db]
db1 ansible_host=10.0.0.5 ansible_user=postgres ansible_port=2200
[db:vars]
ansible_user=ignored
[other]
[::1]:2201
"""
    hosts = parse_host_list(text, "inv")
    assert [(h.name, h.host, h.user, h.port, h.group) for h in hosts] == [
        ("web1", "web1", None, None, "all"),
        ("web2:2222", "web2", "deploy", 2222, "all"),
        ("db1", "10.0.0.5", "postgres", 2200, "db"),
        ("[::1]:2201", "::1", None, 2201, "other"),
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("-oProxyCommand=x\n", "inv:1: .*starts with '-'"),
        ("ok\nbad;host\n", "inv:2: .*cannot be in a host name"),
        ("web1 extra\n", "inv:1: one host per line"),
        ("db ansible_host=$(id)\n", "inv:1: .*cannot be in a host name"),
        ("db ansible_port=x\n", "inv:1: bad port"),
    ],
)
def test_plain_host_list_errors_name_the_line(text, message):
    with pytest.raises(InventoryError, match=message):
        parse_host_list(text, "inv")


def test_ansible_inventory_json():
    data = {
        "_meta": {
            "hostvars": {
                "web1": {"ansible_host": "192.0.2.10", "ansible_user": "admin", "ansible_port": 2222},
                "db1": {"ansible_host": "192.0.2.20"},
                "lonely": {},
            }
        },
        "all": {"children": ["ungrouped", "web", "db"]},
        "ungrouped": {"hosts": ["solo"]},
        "web": {"hosts": ["web1", "web2"]},
        "db": {"hosts": ["db1", "web1"]},
    }
    hosts = parse_ansible_json(json.dumps(data), "inv.json")
    got = {h.name: (h.host, h.user, h.port, h.group) for h in hosts}
    assert got == {
        "solo": ("solo", None, None, "all"),
        "web1": ("192.0.2.10", "admin", 2222, "web"),
        "web2": ("web2", None, None, "web"),
        "db1": ("192.0.2.20", None, None, "db"),
        "lonely": ("lonely", None, None, "all"),
    }
    with pytest.raises(InventoryError, match="ansible_host"):
        parse_ansible_json(json.dumps({"_meta": {"hostvars": {"x": {"ansible_host": "-oX"}}}}), "inv.json")
    with pytest.raises(InventoryError, match="not valid JSON"):
        parse_ansible_json("{nope", "inv.json")


def test_dedupe_says_when_it_drops_another_user():
    dropped: list[str] = []
    ds = [parse_destination("root@web1"), parse_destination("web1"), parse_destination("root@WEB1.")]
    assert [(d.user, d.name) for d in dedupe(ds, dropped)] == [("root", "web1")]
    assert dropped == ["web1 is listed more than once with different users; audited once, as root@web1"]


def test_ssh_config_dev_null_means_no_configuration():
    import os

    from tcpaudit.collect.ssh import load_ssh_config

    assert load_ssh_config(Path(os.devnull)).lookup("web1")["hostname"] == "web1"  # as `ssh -F /dev/null`


def test_dedupe_by_normalised_name():
    ds = [parse_destination(x) for x in ("Web1", "root@web1", "web1.", "web2", "web1:22", "web1:2222")]
    assert [d.name for d in dedupe(ds)] == ["web1", "web2", "web1:2222"]


def test_drift_against_the_group_majority():
    sysctls = {
        "a": {
            "net.ipv4.tcp_keepalive_time": "7200",
            "net.ipv4.conf.eth0.rp_filter": "1",
            "net.netfilter.nf_conntrack_count": "10",
        },
        "b": {
            "net.ipv4.tcp_keepalive_time": "7200",
            "net.ipv4.conf.eth0.rp_filter": "0",
            "net.netfilter.nf_conntrack_count": "99",
        },
        "c": {
            "net.ipv4.tcp_keepalive_time": "600",
            "net.ipv4.conf.eth0.rp_filter": "0",
            "net.netfilter.nf_conntrack_count": "7",
        },
        "d": {"net.ipv4.tcp_keepalive_time": "1"},
        "e": {"net.ipv4.tcp_keepalive_time": "2"},
    }
    out = drift(sysctls, {"a": "x", "b": "x", "c": "x", "d": "y", "e": "y"})
    assert out == [
        {
            "key": "net.ipv4.tcp_keepalive_time",
            "group": "x",
            "majority": "7200",
            "majority_hosts": 2,
            "hosts": {"c": "600"},
        }
    ]


# ---- real sweeps -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("fleet")


@pytest.fixture(scope="module")
def keys(work):
    return sshd.make_keys(work)


def _args(keys, *extra: str) -> list[str]:
    return [*sshd.ssh_args(keys, CONNECT_T, COMMAND_T), *extra]


@pytest.fixture(scope="module")
def sweep20(work, keys):
    """20 hosts: healthy ones (as root, four in network namespaces with their own sysctls), two down, two
    hung, two with a changed host key, two printing garbage, one refusing our key."""
    stop: list = []
    namespaces: list[sshd.NetNS] = []
    hosts: list[tuple[str, dict, str]] = []  # (name, hostvars, expected status)
    kh_lines = []
    try:
        n_ns = 4 if sshd.have_netns() else 0
        healthy = [sshd.SSHServer(work, keys, name=f"ok{i}") for i in range(11 - n_ns)]
        for i in range(n_ns):
            ns = sshd.NetNS(sysctls={"net.ipv4.tcp_keepalive_time": "600" if i == 3 else "7200"})
            namespaces.append(ns)
            healthy.append(sshd.SSHServer(work, keys, address=ns.address, port=22, netns=ns.name, name=f"ns{i}"))
        junk = sshd.write_script(work / "junk.sh", "#!/bin/sh\necho 'This host prints junk'\nexit 0\n")
        garbage = [sshd.SSHServer(work, keys, force_command=str(junk), name=f"junk{i}") for i in range(2)]
        changed = [sshd.SSHServer(work, keys, name=f"changed{i}") for i in range(2)]
        (work / "empty_ak").write_text("")
        noauth = [sshd.SSHServer(work, keys, authorized_keys=work / "empty_ak", name="noauth")]
        servers = healthy + garbage + changed + noauth
        for s in servers:
            s.start(wait=False)
            stop.append(s)
        for s in servers:
            s.wait_ready()
        other = sshd.keygen(work / "other_host_key")
        for s in servers:
            kh_lines.append(s.known_line(other if s in changed else None))
        silent = sshd.SilentServer()
        stop.append(silent)
        hung_second: tuple[str, int]
        if sshd.have_netns():
            dropper = sshd.NetNS(drop_input=True)
            namespaces.append(dropper)
            hung_second = (dropper.address, 22)
        else:
            silent2 = sshd.SilentServer()
            stop.append(silent2)
            hung_second = ("127.0.0.1", silent2.port)
        refusing = [sshd.RefusingPort(), sshd.RefusingPort()]
        stop.extend(refusing)
        down = [r.port for r in refusing]

        def add(name: str, address: str, port: int, expected: str, group: str) -> None:
            hosts.append((name, {"ansible_host": address, "ansible_port": port, "ansible_user": USER}, expected, group))

        for s in healthy:
            add(s.name, s.address, s.port, "ok", "ns" if s.netns else "lo")
        for s in garbage:
            add(s.name, s.address, s.port, "bad_output", "lo")
        for s in changed:
            add(s.name, s.address, s.port, "host_key_rejected", "lo")
        add("noauth", noauth[0].address, noauth[0].port, "auth_failed", "lo")
        add("hung0", "127.0.0.1", silent.port, "timeout", "lo")
        add("hung1", *hung_second, "timeout", "lo")
        for i, port in enumerate(down):
            add(f"down{i}", "127.0.0.1", port, "unreachable", "lo")
        assert len(hosts) == 20
        kh = work / "known_hosts"
        kh.write_text("".join(kh_lines))
        groups: dict[str, dict] = {}
        for name, _hv, _exp, group in hosts:
            groups.setdefault(group, {"hosts": []})["hosts"].append(name)
        inv = {
            "_meta": {"hostvars": {name: hv for name, hv, _e, _g in hosts}},
            "all": {"children": sorted(groups)},
            **groups,
        }
        inv_path = work / "inventory.json"
        inv_path.write_text(json.dumps(inv, indent=1))
        order = [h for g in sorted(groups) for h in groups[g]["hosts"]]  # ansible-inventory order: by group
        yield {"inventory": inv_path, "hosts": hosts, "order": order, "netns": bool(namespaces)}
    finally:
        for s in stop:
            s.stop()
        for ns in namespaces:
            ns.delete()


@needs_sshd
@pytest.mark.ssh
def test_twenty_host_sweep_reports_every_host_once_with_the_right_status(sweep20, keys, tmp_path):
    out = tmp_path / "fleet.json"
    t0 = time.monotonic()
    p = sshd.run_tcpaudit(
        ["fleet", "--inventory", str(sweep20["inventory"]), *_args(keys), "-f", f"json:{out}", "-f", "table"],
        timeout=120,
    )
    elapsed = time.monotonic() - t0
    assert p.returncode == 3, p.stderr  # some hosts could not be audited
    # hung hosts end at the connect timeout, healthy ones within the command timeout (python start-up on top)
    assert elapsed < CONNECT_T + COMMAND_T + 60, elapsed
    # each failure is its host's status; paramiko's own tracebacks (hung banner, closed socket) stay out of it
    err = p.stderr.decode(errors="replace") if isinstance(p.stderr, bytes) else p.stderr
    assert "Traceback" not in err and "Exception (client)" not in err, err
    report = json.loads(out.read_text())
    Report.model_validate(report)
    names = [t["name"] for t in report["targets"]]
    assert names == sweep20["order"]  # every inventory host exactly once, in inventory order
    got = {t["name"]: t["status"] for t in report["targets"]}
    assert got == {h[0]: h[2] for h in sweep20["hosts"]}, {t["name"]: t["error"] for t in report["targets"]}
    for t in report["targets"]:
        if t["status"] == "ok":
            assert t["kernel"]["release"] and t["checks"], t["name"]  # fully audited
            assert t["error"] is None
        else:
            assert t["error"] and "\n" not in t["error"]
    fleet = report["extra"]["fleet"]
    assert fleet["statuses"] == {
        "ok": 11,
        "bad_output": 2,
        "host_key_rejected": 2,
        "auth_failed": 1,
        "timeout": 2,
        "unreachable": 2,
    }
    for rule, e in fleet["by_rule"].items():
        assert 1 <= e["hosts"] <= e["of"] == 11 and e["severity"] in ("info", "low", "medium", "high", "critical")
        assert report["summary"]["by_rule"][rule] == e["hosts"]
    if sweep20["netns"]:
        ka = [d for d in fleet["drift"] if d["key"] == "net.ipv4.tcp_keepalive_time"]
        assert ka == [
            {
                "key": "net.ipv4.tcp_keepalive_time",
                "group": "ns",
                "majority": "7200",
                "majority_hosts": 3,
                "hosts": {"ns3": "600"},
            }
        ]
    timeline = fleet["timeline"]  # one entry per host: when it started and how long each phase took
    assert sorted(timeline) == sorted(names)
    for name, status in got.items():
        e = timeline[name]
        assert set(e) == {"start_s", "connect_s", "collect_s", "audit_s"} and min(e.values()) >= 0, (name, e)
        assert e["start_s"] + e["connect_s"] + e["collect_s"] + e["audit_s"] <= fleet["elapsed_s"] + 0.01
        if status == "ok":
            assert e["connect_s"] > 0 and e["collect_s"] > 0 and e["audit_s"] > 0, (name, e)
        else:
            assert e["audit_s"] == 0, (name, e)
        if status in ("unreachable", "timeout", "host_key_rejected", "auth_failed"):
            assert e["collect_s"] == 0, (name, e)  # never got as far as running the collector
        if status == "timeout":
            assert e["connect_s"] >= CONNECT_T - 0.05, (name, e)  # waited the whole connect timeout
    # the hosts are swept at once, not one after another: every host started before the first hung one gave up
    first_given_up = min(timeline[n]["start_s"] + timeline[n]["connect_s"] for n, st in got.items() if st == "timeout")
    assert max(e["start_s"] for e in timeline.values()) < first_given_up, timeline
    text = p.stdout.decode()
    assert "Fleet: 20 host(s)" in text and "timeout" in text
    assert "auditing" not in p.stderr.decode()  # no progress bar when stderr is not a terminal


@needs_sshd
@pytest.mark.ssh
def test_fleet_sources_dedupe_and_detail(work, keys, tmp_path):
    fleet = sshd.start_fleet(tmp_path, 3, keys=keys, prefix="c")
    try:
        a, b, c = fleet.aliases()
        plain = tmp_path / "hosts.txt"
        plain.write_text(f"# inventory\n{a}\n{a.upper()}\n")
        p = sshd.run_tcpaudit(
            [
                "fleet",
                "--inventory",
                str(plain),
                "--inventory",
                "-",
                b,
                a,
                "--ssh-config",
                str(fleet.ssh_config),
                "--ssh-config-hosts",
                "--connect-timeout",
                "10",
                "--command-timeout",
                "30",
                "-f",
                "json",
                "--jobs",
                "2",
            ],
            input=f"{b}\n{c}\n".encode(),
        )
        assert p.returncode in (0, 1), p.stderr
        report = json.loads(p.stdout)
        assert [t["name"] for t in report["targets"]] == [a, b, c]
        assert all(t["status"] == "ok" for t in report["targets"])
        p = sshd.run_tcpaudit(["fleet", a, "--ssh-config", str(fleet.ssh_config), "--detail", "--fail-on", "info"])
        text = p.stdout.decode()
        assert f"== {a} (host" in text and "Fleet: 1 host(s): 1 ok" in text
        assert p.returncode == (1 if report["targets"][0]["findings"] else 0)
    finally:
        fleet.stop()


def test_fleet_usage_errors(tmp_path):
    p = sshd.run_tcpaudit(["fleet"])
    assert p.returncode == 2 and b"no hosts" in p.stderr
    bad = tmp_path / "inv.txt"
    bad.write_text("good\n-oProxyCommand=x\n")
    p = sshd.run_tcpaudit(["fleet", "--inventory", str(bad)])
    assert p.returncode == 2 and f"{bad}:2".encode() in p.stderr
    p = sshd.run_tcpaudit(["fleet", "--inventory", str(tmp_path / "missing")])
    assert p.returncode == 2 and b"cannot read" in p.stderr


@needs_sshd
@pytest.mark.ssh
def test_ctrl_c_keeps_the_hosts_done_and_exits_130(work, keys, tmp_path):
    fleet = sshd.start_fleet(tmp_path, 2, keys=keys, prefix="i")
    silent = [sshd.SilentServer() for _ in range(3)]
    out = tmp_path / "partial.json"
    hosts = fleet.aliases() + [f"{USER}@127.0.0.1:{s.port}" for s in silent]
    env = dict(os.environ, PYTHONPATH=str(sshd.REPO))
    env.pop("SSH_AUTH_SOCK", None)
    proc = subprocess.Popen(
        [
            *sshd.tcpaudit_argv(),
            "fleet",
            *hosts,
            "--ssh-config",
            str(fleet.ssh_config),
            "--known-hosts",
            str(keys.known_hosts),
            "--connect-timeout",
            "60",
            "--save-snapshots",
            str(tmp_path / "snaps"),
            "-f",
            f"json:{out}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        # wait until the two healthy hosts are done (their snapshots are saved), the three hung ones not
        while time.monotonic() < deadline and len(list((tmp_path / "snaps").glob("*.json"))) < 2:
            time.sleep(0.1)
        time.sleep(0.3)
        assert proc.poll() is None
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert time.monotonic() - t0 < 30  # not the 60 s connect timeout of the hung hosts
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        fleet.stop()
        for s in silent:
            s.stop()
    assert proc.returncode == 130, err
    report = json.loads(out.read_text())
    statuses = [t["status"] for t in report["targets"]]
    assert statuses == ["ok", "ok", "interrupted", "interrupted", "interrupted"]
    assert report["summary"]["exit_code"] == 130


def test_render_fleet_escapes_host_strings():
    from tcpaudit.audit import build_report, failed_target
    from tcpaudit.fleet import fleet_view
    from tcpaudit.model import TargetStatus

    t = failed_target("evil\x1b[2J", TargetStatus.bad_output, "junk \x1b]0;x\x07")
    report = build_report([t])
    report.extra["fleet"] = fleet_view([t], {}, {})
    text = render_fleet(report)
    assert "\x1b" not in text and "\x07" not in text
    assert "Fleet: 1 host(s): 1 bad_output" in text
