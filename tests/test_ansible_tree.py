"""`tcpaudit audit DIR` on the tree Ansible writes with `ansible all -m script -a "$(tcpaudit collector-script
path)" -t DIR`: every host once, unreachable and failed hosts with Ansible's (sanitised) reason, files that
are not tree output refused in one line, and the same findings as `tcpaudit fleet` on the same hosts.

The end-to-end test runs the real ansible-core (from PyPI, into a venv inside the test venv, installed once
and reused) against real sshd servers in network namespaces with their own sysctls (tests/sshd.py), plus one
host that refuses connections. It needs root (namespaces) and OpenSSH; without them it skips and says why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sshd  # noqa: E402  (tests/sshd.py: shared helpers, imported explicitly)

from tcpaudit.collect.ansible_tree import AnsibleTreeError, host_result, read_tree  # noqa: E402
from tcpaudit.model import Report, TargetStatus  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# The tree callback and `-t` are deprecated in ansible-core 2.19 and go away in 2.23.
ANSIBLE_SPEC = "ansible-core>=2.15,<2.23"
ANSIBLE_VENV = Path(sys.prefix) / "tcpaudit-test-ansible"


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return sshd.run_tcpaudit(args, timeout=timeout)


def _local_dump() -> str:
    """A real collector dump of this machine, as Ansible's `script` module returns it: through a pty, so
    every line ends in CRLF."""
    script = _run(["collector-script"]).stdout
    out = subprocess.run(["sh", "-s"], input=script, capture_output=True, timeout=120).stdout.decode()
    return out.replace("\n", "\r\n")


def _write(tree: Path, name: str, result: Any) -> None:
    tree.mkdir(exist_ok=True)
    (tree / name).write_text(json.dumps(result), encoding="utf-8")


# ---- the reader, on results shaped as ansible-core writes them -----------------------------------------
def test_results_become_statuses_with_ansibles_reason() -> None:
    unreachable = host_result(
        "web1",
        {
            "unreachable": True,
            "changed": False,
            "msg": "Task failed: Failed to connect to the host via ssh: \x1b[31mssh: connect to host 10.0.0.1 "
            "port 22: Connection refused\r\n",
        },
        "tree/web1",
    )
    assert unreachable.status is TargetStatus.unreachable and unreachable.snapshot is None
    assert unreachable.error is not None and "\x1b" not in unreachable.error and "\r" not in unreachable.error
    assert unreachable.error.startswith("unreachable: Task failed: Failed to connect")
    assert "Connection refused" in unreachable.error

    failed = host_result(
        "db1", {"changed": True, "rc": 127, "stdout": "", "stderr": "sh: 1: /nope: not found\r\n"}, "tree/db1"
    )
    assert failed.status is TargetStatus.error and failed.error == "failed: rc=127: sh: 1: /nope: not found"
    failed_msg = host_result("db2", {"failed": True, "msg": "Could not find or access 'x.sh'"}, "tree/db2")
    assert failed_msg.status is TargetStatus.error and failed_msg.error == "failed: Could not find or access 'x.sh'"

    skipped = host_result("db3", {"skipped": True, "changed": False, "msg": "conditional false"}, "tree/db3")
    assert skipped.status is TargetStatus.skipped

    junk = host_result("db4", {"changed": True, "rc": 0, "stdout": "Welcome!\r\nno collector here\r\n"}, "tree/db4")
    assert junk.status is TargetStatus.bad_output and junk.error and junk.error.startswith("not a collector dump")


def test_a_real_dump_through_a_pty_gives_a_snapshot() -> None:
    r = host_result("h1", {"changed": True, "rc": 0, "stdout": _local_dump(), "stderr": ""}, "tree/h1")
    assert r.status is TargetStatus.ok, r.error
    assert r.snapshot is not None and r.snapshot.kernel.release == os.uname().release
    assert r.snapshot.sysctls.get("net.ipv4.tcp_syncookies") is not None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json at all\n", "not JSON, so not Ansible tree output"),
        (b'["a", "list"]', "not an Ansible task result"),
        (b'{"hostname": "web1", "schema_version": 1}', "not an Ansible task result"),
        (b'{"changed": false, "rc": 0}', "without stdout"),
    ],
    ids=["text", "list", "snapshot-like", "no-stdout"],
)
def test_files_that_are_not_tree_output_are_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "web1").write_bytes(content)
    with pytest.raises(AnsibleTreeError, match=message):
        read_tree(tree)
    p = _run(["audit", str(tree)])
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert str(tree / "web1") in err


def test_directory_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AnsibleTreeError, match="empty directory"):
        read_tree(empty)
    nested = tmp_path / "nested"
    (nested / "sub").mkdir(parents=True)
    with pytest.raises(AnsibleTreeError, match="not a file"):
        read_tree(nested)


def test_audit_dir_reports_every_host_once_and_exits_3(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    dump = _local_dump()
    _write(tree, "web1", {"changed": True, "rc": 0, "stdout": dump, "stderr": "Connection to web1 closed.\r\n"})
    _write(tree, "web2", {"changed": True, "rc": 0, "stdout": dump, "stderr": ""})
    _write(tree, "down1", {"unreachable": True, "changed": False, "msg": "ssh: connect to host: No route to host"})
    _write(tree, "bad1", {"changed": True, "rc": 2, "stdout": "", "stderr": "sh: syntax error"})
    out = tmp_path / "r.json"
    p = _run(["audit", str(tree), "--format", f"json:{out}", "--format", "table"])
    assert p.returncode == 3, p.stderr.decode()
    report = json.loads(out.read_text())
    Report.model_validate(report)
    got = {t["name"]: t["status"] for t in report["targets"]}
    assert got == {"bad1": "error", "down1": "unreachable", "web1": "ok", "web2": "ok"}
    assert [t["name"] for t in report["targets"]] == sorted(got)
    down = next(t for t in report["targets"] if t["name"] == "down1")
    assert down["error"] == "unreachable: ssh: connect to host: No route to host"
    fleet = report["extra"]["fleet"]
    assert fleet["statuses"] == {"error": 1, "ok": 2, "unreachable": 1} and fleet["audited"] == 2
    web = [t for t in report["targets"] if t["status"] == "ok"]
    assert [(f["rule"], f["severity"]) for f in web[0]["findings"]] == [
        (f["rule"], f["severity"]) for f in web[1]["findings"]
    ]
    assert "down1" in p.stdout.decode()


def test_a_host_in_two_trees_is_audited_once(tmp_path: Path) -> None:
    dump = _local_dump()
    for d in ("a", "b"):
        _write(tmp_path / d, "web1", {"changed": True, "rc": 0, "stdout": dump})
    p = _run(["audit", str(tmp_path / "a"), str(tmp_path / "b"), "--format", "json"])
    assert p.returncode in (0, 1), p.stderr.decode()
    assert [t["name"] for t in json.loads(p.stdout)["targets"]] == ["web1"]
    assert "is in both" in p.stderr.decode()


def test_collector_script_path_is_the_shipped_script() -> None:
    p = _run(["collector-script", "path"])
    assert p.returncode == 0, p.stderr
    path = Path(p.stdout.decode().strip())
    assert path.is_file() and path.read_bytes() == _run(["collector-script"]).stdout
    bad = _run(["collector-script", "where"])
    assert bad.returncode == 2 and b"Traceback" not in bad.stderr


# ---- end to end: ansible-core against sshd hosts in network namespaces ------------------------------
def _ansible() -> Path:
    exe = ANSIBLE_VENV / "bin" / "ansible"
    if exe.exists():
        return exe
    try:
        if not (ANSIBLE_VENV / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(ANSIBLE_VENV)], check=True, capture_output=True)
        subprocess.run(
            [str(ANSIBLE_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
            + [ANSIBLE_SPEC],
            check=True,
            capture_output=True,
            timeout=900,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        tail = (getattr(exc, "stderr", b"") or b"").decode(errors="replace").strip().splitlines()[-1:]
        pytest.skip(f"could not install {ANSIBLE_SPEC} from the package index: {exc} {' '.join(tail)}")
    return exe


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if not sshd.have_sshd():
        pytest.skip("OpenSSH server (/usr/sbin/sshd) not installed (./scripts/test installs it as root)")
    if not sshd.have_netns():
        pytest.skip("needs root and iproute2: the hosts are sshd servers in network namespaces")
    work = tmp_path_factory.mktemp("ansible-tree")
    keys = sshd.make_keys(work)
    settings = [
        {},
        {"net.ipv4.tcp_syncookies": "0", "net.ipv4.tcp_timestamps": "0"},
        {"net.ipv4.tcp_sack": "0", "net.ipv4.ip_local_port_range": "1024 65000", "net.ipv4.tcp_keepalive_time": "600"},
    ]
    namespaces: list[sshd.NetNS] = []
    servers: list[sshd.SSHServer] = []
    refusing: list[sshd.RefusingPort] = []
    try:
        for i, sysctls in enumerate(settings):
            ns = sshd.NetNS(sysctls=sysctls)
            namespaces.append(ns)
            # TCPKeepAlive no: the audit's own SSH session is the namespace's one established connection, and
            # with SO_KEEPALIVE its ss timer is "keepalive" or, while the collector's output is in flight, "on";
            # NAT001's severity follows that timer, so the two collections could differ by timing alone
            servers.append(
                sshd.SSHServer(
                    work, keys, address=ns.address, port=22, netns=ns.name, name=f"ns{i}", extra=["TCPKeepAlive no"]
                )
            )
        for s in servers:
            s.start()
        keys.known_hosts.write_text("".join(s.known_line() for s in servers))
        user = sshd.login_user()
        lines = [f"{s.name} ansible_host={s.address} ansible_port={s.port} ansible_user={user}" for s in servers]
        down = sshd.RefusingPort()
        refusing.append(down)
        lines.append(f"down0 ansible_host=127.0.0.1 ansible_port={down.port} ansible_user={user}")
        inventory = work / "inventory.ini"  # read by both ansible and `tcpaudit fleet --inventory`
        inventory.write_text("[all]\n" + "\n".join(lines) + "\n")
        yield {"work": work, "keys": keys, "inventory": inventory, "names": [*(s.name for s in servers), "down0"]}
    finally:
        for s in servers:
            s.stop()
        for r in refusing:
            r.stop()
        for ns in namespaces:
            ns.delete()


def _ansible_tree(hosts: Any, tree: Path) -> subprocess.CompletedProcess[str]:
    work, keys = hosts["work"], hosts["keys"]
    cfg = work / "ansible.cfg"
    cfg.write_text(
        f"""[defaults]
host_key_checking = True
private_key_file = {keys.client_key}
local_tmp = {work}/ansible-tmp
timeout = 10
deprecation_warnings = False
interpreter_python = auto_silent
retry_files_enabled = False

[ssh_connection]
ssh_args = -o ControlMaster=no -o ControlPersist=no -o UserKnownHostsFile={keys.known_hosts} """
        "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o BatchMode=yes -F /dev/null\n"
    )
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(cfg),
        "ANSIBLE_HOME": str(work / "ansible-home"),
        "ANSIBLE_NOCOLOR": "1",
    }
    env.pop("SSH_AUTH_SOCK", None)
    script = _run(["collector-script", "path"]).stdout.decode().strip()
    argv = [str(_ansible()), "all", "-i", str(hosts["inventory"]), "-m", "script", "-a", script, "-t", str(tree)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, stdin=subprocess.DEVNULL)


def _findings(report: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(t["name"], f["rule"], f["severity"]) for t in report["targets"] for f in t["findings"]}


@pytest.mark.root
@pytest.mark.ssh
@pytest.mark.slow
def test_audit_of_the_ansible_tree_matches_tcpaudit_fleet(hosts: Any, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    a = _ansible_tree(hosts, tree)
    assert a.returncode == 4, a.stdout[-1500:] + a.stderr[-1500:]  # 4: some host was unreachable
    assert sorted(p.name for p in tree.iterdir()) == sorted(hosts["names"])

    context = ["--nat-idle-timeout", "240", "--clients-behind-nat", "yes"]
    audited = _run(["audit", str(tree), "--format", "json", *context])
    assert audited.returncode == 3, audited.stderr.decode()  # one host could not be audited
    keys = hosts["keys"]
    fleet = _run(
        ["fleet", "--inventory", str(hosts["inventory"]), *sshd.ssh_args(keys, 60, 120), "--format", "json", *context],
        timeout=300,
    )
    assert fleet.returncode == 3, fleet.stderr.decode()
    via_ansible, via_fleet = json.loads(audited.stdout), json.loads(fleet.stdout)
    for report in (via_ansible, via_fleet):
        Report.model_validate(report)
        assert sorted(t["name"] for t in report["targets"]) == sorted(hosts["names"])  # every host, once

    assert {t["name"]: t["status"] for t in via_ansible["targets"]} == {
        t["name"]: t["status"] for t in via_fleet["targets"]
    }
    down = next(t for t in via_ansible["targets"] if t["name"] == "down0")
    assert down["status"] == "unreachable" and "Connection refused" in down["error"]

    assert _findings(via_ansible) == _findings(via_fleet)
    assert via_ansible["extra"]["fleet"]["by_rule"] == via_fleet["extra"]["fleet"]["by_rule"]
    # the namespaces' own settings were seen: syncookies off in ns1, SACK off in ns2, none in ns0
    rules = {(name, rule) for name, rule, _sev in _findings(via_ansible)}
    assert ("ns1", "TCP007") in rules and ("ns2", "TCP012") in rules
    assert not any(name == "ns0" and rule in ("TCP007", "TCP012") for name, rule in rules)
    checks = {t["name"]: {c["rule"]: c["outcome"] for c in t["checks"]} for t in via_ansible["targets"]}
    checks_fleet = {t["name"]: {c["rule"]: c["outcome"] for c in t["checks"]} for t in via_fleet["targets"]}
    assert checks == checks_fleet
