"""`tcpaudit host user@H --all-netns` and `tcpaudit fleet --all-netns` over real SSH, on real kernel state.

A real sshd on loopback (tests/sshd.py), pod-like namespaces (unshare'd processes in kubepods-style cgroups with
/var/log/pods directories, tests/netns_pods.py) and an `ip netns` named namespace, all named `ta-nsremote-*` and
removed after. Other processes on this machine make and remove namespaces all the time: the tests assert on the
namespaces they made and on the host's, never on a count.

- the remote run lists each of the test's namespaces exactly once, with lsns's inode, the names the local run
  gives, and the same findings and sysctls as the local `--all-netns` for them;
- fleet --all-netns with one reachable host (its namespaces `HOST/netns:NAME`) and one unreachable;
- a namespace that ends between enumeration and entry (the collector is held, with SIGSTOP, while it reads an
  earlier namespace): skipped "gone", no traceback;
- no nsenter on the host (sshd gives the session a PATH without it), not root (the collector run as nobody),
  no /proc/PID/ns at all (sshd in a mount namespace with an empty /proc): the host alone, and why.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from . import netns_pods
from .netns_pods import cluster, lsns_net, tcpaudit_all_netns  # noqa: F401 - fixture

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sshd  # noqa: E402  (tests/sshd.py: shared helpers, imported explicitly)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not sshd.have_sshd(), reason="OpenSSH sshd is not installed"),
    pytest.mark.skipif(shutil.which("nsenter") is None, reason="nsenter (util-linux) is not installed"),
]

PREFIX = "ta-nsremote-"

POD = r"""
sysctl("net.ipv4.ip_local_port_range", "20000 20999")
sysctl("net.ipv4.tcp_keepalive_time", "600")
srv = socket.socket()
srv.bind(("127.0.0.1", 20500))
srv.listen(4)
ready(inode=netns_inode())
for _ in commands():
    pass
"""

PLAIN = r"""
ready(inode=netns_inode())
for _ in commands():
    pass
"""


@pytest.fixture(autouse=True)
def _names(monkeypatch) -> None:
    """This module's pods, cgroups and named namespaces are called ta-nsremote-*."""
    monkeypatch.setattr(netns_pods, "PREFIX", PREFIX)


@pytest.fixture
def server(tmp_path):
    keys = sshd.make_keys(tmp_path)
    made: list[sshd.SSHServer] = []

    def start(**kw) -> sshd.SSHServer:
        s = sshd.SSHServer(tmp_path, keys, name=f"{PREFIX}sshd{len(made)}", **kw)
        made.append(s)
        s.start()
        with open(keys.known_hosts, "a") as f:
            f.write(s.known_line())
        return s

    start.keys = keys  # type: ignore[attr-defined]
    try:
        yield start
    finally:
        for s in made:
            s.stop()


def remote(start, s: sshd.SSHServer, *args: str, command: str = "host", timeout: float = 60) -> tuple[int, dict, str]:
    argv = [command, *([f"root@127.0.0.1:{s.port}"] if s is not None else []), "--all-netns", "--format", "json"]
    r = sshd.run_tcpaudit([*argv, *args, *sshd.ssh_args(start.keys, command_timeout=timeout)], timeout=timeout + 60)
    stderr = r.stderr.decode()
    assert "Traceback" not in stderr, stderr
    try:
        report = json.loads(r.stdout)
    except ValueError:
        raise AssertionError(f"exit {r.returncode}, no JSON report: {r.stdout[:300]!r} {stderr[-2000:]}") from None
    return r.returncode, report, stderr


def by_inode(report: dict) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for t in report["targets"]:
        if t["netns"] is not None:
            out.setdefault(int(t["netns"]["inode"]), []).append(t)
    return out


def rules(target: dict) -> list[str]:
    return sorted(f["rule"] for f in target["findings"] if f["suppressed"] is None)


def host_inode() -> int:
    from tcpaudit.collect.netns import enumerate_netns

    return enumerate_netns().host_inode


def test_remote_all_netns_lists_our_namespaces_like_the_local_run(cluster, server) -> None:  # noqa: F811
    pods = [cluster.pod(POD, qos="burstable"), cluster.pod(PLAIN, qos="besteffort"), cluster.pod(PLAIN)]
    named = cluster.named_netns()
    s = server()
    rc, report, stderr = remote(server, s)
    lsns = lsns_net()
    assert rc in (0, 1, 3), stderr  # 3: some other process's namespace ended meanwhile (its own target says so)
    found = by_inode(report)
    assert all(len(ts) == 1 for ts in found.values()), "every namespace exactly once"
    names = [t["name"] for t in report["targets"]]
    assert len(names) == len(set(names))

    dest = f"127.0.0.1:{s.port}"
    (host,) = found[host_inode()]
    assert host["kind"] == "host" and host["name"] == dest and host["status"] == "ok" and host["netns"]["is_host"]
    assert report["targets"][0] is host or report["targets"][0]["name"] == dest  # the host comes first
    assert report["extra"]["netns"]["host_inode"] == host_inode()
    assert report["extra"]["netns"]["entered_with"] == "nsenter"
    for pod in pods:
        (t,) = found[pod.inode]
        assert pod.inode in lsns and int(lsns[pod.inode]["ns"]) == t["netns"]["inode"]
        assert t["kind"] == "netns" and t["status"] == "ok", t
        assert t["name"] == f"netns:{pod.expected_name}"
        ns = t["netns"]
        assert (ns["pod"], ns["pod_uid"], ns["container_id"], ns["name_source"]) == (
            pod.expected_name,
            pod.uid,
            pod.container_id,
            "pod-log-dir",
        )
        assert pod.pid in ns["pids"]
    (t,) = found[named.inode]
    assert t["name"] == f"netns:{named.name}" and t["netns"]["name_source"] == "bind-mount"
    assert f"/run/netns/{named.name}" in t["netns"]["bind_mounts"] and t["status"] == "ok"

    # The pod's own values, read inside it (not the host's), and the findings they give.
    (t,) = found[pods[0].inode]
    assert t["sysctls"]["net.ipv4.ip_local_port_range"] == "20000 20999"
    assert t["sysctls"]["net.ipv4.tcp_keepalive_time"] == "600"
    assert host["sysctls"].get("net.ipv4.ip_local_port_range") != "20000 20999"
    assert "PORT002" in rules(t)  # 20500 listens inside its ephemeral range

    # The same as the local --all-netns gives for the namespaces this test made.
    rc_local, local, _ = tcpaudit_all_netns()
    local_found = by_inode(local)
    for inode in [p.inode for p in pods] + [named.inode]:
        (a,) = found[inode]
        (b,) = local_found[inode]
        assert a["name"] == b["name"] and a["netns"]["name"] == b["netns"]["name"]
        assert {k: v for k, v in a["netns"].items() if k != "pids"} == {
            k: v for k, v in b["netns"].items() if k != "pids"
        }
        assert rules(a) == rules(b), (a["name"], rules(a), rules(b))
        assert a["sysctls"] == b["sysctls"], a["name"]
        assert a["kernel"] == b["kernel"]


def test_fleet_all_netns_one_host_unreachable(cluster, server) -> None:  # noqa: F811
    pod = cluster.pod(POD)
    s = server()
    closed = sshd.free_port()  # nothing listens there
    rc, report, stderr = remote(
        server, None, f"root@127.0.0.1:{s.port}", f"root@127.0.0.1:{closed}", command="fleet", timeout=60
    )
    assert rc == 3, stderr
    good, bad = f"127.0.0.1:{s.port}", f"127.0.0.1:{closed}"
    hosts = [t for t in report["targets"] if t["kind"] == "host"]
    assert sorted(t["name"] for t in hosts) == sorted([good, bad])  # every host once
    (down,) = [t for t in hosts if t["name"] == bad]
    assert down["status"] == "unreachable"
    (t,) = by_inode(report)[pod.inode]
    assert t["name"] == f"{good}/netns:{pod.expected_name}" and t["status"] == "ok" and "PORT002" in rules(t)
    # the namespaces follow their host, and the fleet view counts hosts, not namespaces
    names = [t["name"] for t in report["targets"]]
    assert names.index(good) < names.index(t["name"])
    assert len(names) == len(set(names))
    fleet = report["extra"]["fleet"]
    assert fleet["hosts"] == 2 and fleet["statuses"] == {"ok": 1, "unreachable": 1}
    assert report["extra"]["netns"]["hosts"][good]["host_inode"] == host_inode()


def _processes_in(inode: int, besides: set[int]) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in besides:
            continue
        try:
            if os.stat(f"/proc/{d}/ns/net").st_ino == inode:
                out.append(int(d))
        except OSError:
            continue
    return out


def _stop(pid: int) -> bool:
    """SIGSTOP pid; True once it is stopped, False when it exited instead (it was already on its way out)."""
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        return False
    for _ in range(400):  # a process that cannot stop now (vfork parent, exiting) is let go, not waited for
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        if state in ("T", "t"):
            return True
        if state in ("Z", "X"):
            return False
        time.sleep(0.005)
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass
    return False


def _pod_pids(pod) -> set[int]:
    pids = {pod.pid}
    try:
        with open(f"/proc/{pod.pid}/task/{pod.pid}/children") as f:
            pids |= {int(p) for p in f.read().split()}
    except OSError:
        pass
    return pids


def _run_holding(port: int, keys, pod, during, command_timeout: float = 120) -> tuple[int | None, bytes, bytes]:
    """`tcpaudit host root@127.0.0.1:PORT --all-netns`; the first command the collector runs inside `pod`'s
    namespace is held (SIGSTOP) while during(proc) runs, then let go. -> (held pid or None, stdout, stderr).
    during may read the output itself (proc.communicate(): a report larger than a pipe's buffer would
    otherwise block tcpaudit) and return it."""
    ours = _pod_pids(pod)
    argv = ["host", f"root@127.0.0.1:{port}", "--all-netns", "--format", "json"]
    proc = subprocess.Popen(
        [*sshd.tcpaudit_argv(), *argv, *sshd.ssh_args(keys, command_timeout=command_timeout)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"} | {"PYTHONPATH": str(sshd.REPO)},
    )
    held = None
    got = None
    try:
        while proc.poll() is None and held is None:
            for pid in _processes_in(pod.inode, ours):
                if _stop(pid):  # a command of the collector (started by our sshd), now held
                    held = pid
                    break
        if held is not None:
            try:
                got = during(proc)  # (stdout, stderr) when it already read them
            finally:
                os.kill(held, signal.SIGCONT)
        out, err = got if got is not None else proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return held, out, err


@pytest.mark.parametrize("when", ["before", "while"])
def test_namespace_gone_before_or_while_it_is_read(cluster, server, when) -> None:  # noqa: F811
    """The collector enters namespaces in inode order. before: while it reads the first of ours it is held
    (SIGSTOP on the command it runs there), the second pod exits, then it goes on: the second is gone by the
    time the collector comes to it. while: it is held inside the second, whose processes exit meanwhile (the
    held command keeps the namespace alive until it goes on): the namespace ends while it is read."""
    s = server()
    for _attempt in range(3):
        a, b = sorted((cluster.pod(PLAIN), cluster.pod(PLAIN)), key=lambda p: p.inode)

        def b_exits(_proc, b=b) -> None:
            b_pid = b.pid
            b.stop()
            for _ in range(500):
                if not os.path.exists(f"/proc/{b_pid}"):
                    break
                time.sleep(0.02)

        held, out, err = _run_holding(s.port, server.keys, a if when == "before" else b, b_exits)
        if held is None:
            continue  # the collector was through the namespace before we saw it: try again
        assert b"Traceback" not in err, err.decode()
        found = by_inode(json.loads(out))
        (gone,) = found[b.inode]
        assert (gone["status"], gone["error"], gone["kind"]) == ("skipped", "gone", "netns")
        assert gone["name"] == f"netns:{b.expected_name}"  # named at enumeration, so still named
        (first,) = found[a.inode]
        assert first["status"] == "ok"
        return
    pytest.skip("could not catch the collector inside the namespace in 3 attempts")


def test_command_timeout_keeps_the_namespaces_read(cluster, server) -> None:  # noqa: F811
    """The collector held inside a namespace past --command-timeout: the host and the namespaces read before are
    audited, the one it was in and those after are listed as not read, each once; exit 3, no traceback."""
    s = server()
    for _attempt in range(3):
        a, b = sorted((cluster.pod(PLAIN), cluster.pod(PLAIN)), key=lambda p: p.inode)
        read_all = lambda proc: proc.communicate(timeout=120)  # noqa: E731
        held, out, err = _run_holding(s.port, server.keys, b, read_all, command_timeout=8)
        if held is None:
            continue
        assert b"Traceback" not in err, err.decode()
        report = json.loads(out)
        assert report["summary"]["exit_code"] == 3
        found = by_inode(report)
        assert all(len(ts) == 1 for ts in found.values())
        (host,) = found[host_inode()]
        assert host["status"] == "ok" and any("--command-timeout" in g for g in host["gaps"]), host["gaps"]
        assert found[a.inode][0]["status"] == "ok"
        (t,) = found[b.inode]
        assert t["status"] == "skipped" and "--command-timeout (8 s)" in t["error"], t["error"]
        assert t["name"] == f"netns:{b.expected_name}"
        netns = json.loads(out)["extra"]["netns"]
        assert "--command-timeout" in netns["cut_short"] and netns["read"] >= 1
        return
    pytest.skip("could not catch the collector inside the namespace in 3 attempts")


def test_without_nsenter_the_host_alone_and_why(cluster, server, tmp_path) -> None:  # noqa: F811
    """sshd gives the session a PATH of every command but nsenter (SetEnv PATH=...): a real host without it."""
    pod = cluster.pod(PLAIN)
    bin_dir = tmp_path / f"{PREFIX}bin"
    bin_dir.mkdir()
    for d in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if not os.path.isdir(d) or os.path.islink(d):
            continue
        for name in os.listdir(d):
            target = bin_dir / name
            if name != "nsenter" and not target.exists():
                target.symlink_to(os.path.join(d, name))
    s = server(extra=[f"SetEnv PATH={bin_dir}"])
    rc, report, stderr = remote(server, s)
    assert rc == 3, stderr  # the namespaces could not be audited
    found = by_inode(report)
    (host,) = found[host_inode()]
    assert host["status"] == "ok" and any("nsenter is not installed" in g for g in host["gaps"]), host["gaps"]
    (t,) = found[pod.inode]
    assert t["status"] == "skipped" and "nsenter is not installed" in t["error"]
    assert t["name"] == f"netns:{pod.expected_name}"  # still enumerated and named
    assert report["extra"]["netns"]["entered_with"] is None
    assert "nsenter" in report["extra"]["netns"]["not_entered"]


def test_not_root_the_host_alone_and_why(cluster) -> None:  # noqa: F811
    """The collector as nobody (what a non-root SSH user runs): namespaces listed where visible, none entered."""
    from tcpaudit.collect.netns_remote import remote_netns

    cluster.pod(PLAIN)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    r = subprocess.run(
        [*nobody, "sh", "-s", "all-netns"], stdin=open(sshd.COLLECTOR, "rb"), capture_output=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    rn = remote_netns(r.stdout)
    assert rn.not_entered is not None and "needs root" in rn.not_entered
    caps = list(rn.captures("h"))
    assert caps[0].status == "ok" and caps[0].name == "h"
    assert all(c.status == "skipped" and "needs root" in (c.error or "") for c in caps[1:])
    assert b"@@tcpaudit-netns-enter" not in r.stdout  # nothing was even tried


@pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare is not installed")
def test_no_proc_ns_files_the_host_alone_and_why(server) -> None:
    """sshd in its own mount namespace with an empty tmpfs over /proc: the collector finds no /proc/*/ns at all,
    as on a kernel without network namespace files or a host that is not Linux."""
    inner = f'mount -t tmpfs {PREFIX}proc /proc && exec "$@"'
    keys = server.keys
    s = sshd.SSHServer(keys.dir.parent, keys, name=f"{PREFIX}noproc", port=sshd.free_port())
    d = keys.dir.parent / f"{PREFIX}noproc"
    d.mkdir()
    cfg = d / "sshd_config"
    cfg.write_text(s.config_text())
    s.log = d / "sshd.log"
    s._logf = open(s.log, "wb")
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", inner, "sh", sshd.SSHD, "-D", "-e", "-f"]
    s.proc = subprocess.Popen(
        [*argv, str(cfg)], stdin=subprocess.DEVNULL, stdout=s._logf, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        s.wait_ready(retries=0)
        with open(keys.known_hosts, "a") as f:
            f.write(s.known_line())
        rc, report, stderr = remote(server, s)
    finally:
        s.stop()
    assert rc == 3, stderr
    (t,) = report["targets"]
    assert t["kind"] == "host" and t["status"] == "partial"
    assert "network namespaces could not be enumerated" in t["error"] and "/proc/self/ns/net" in t["error"]
    assert "/proc/self/ns/net" in report["extra"]["netns"]["unavailable"]


def _local_dump() -> bytes:
    r = subprocess.run(["sh", "-s", "all-netns"], stdin=open(sshd.COLLECTOR, "rb"), capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_a_bad_namespace_dump_skips_that_namespace_only(cluster) -> None:  # noqa: F811
    """What a host sends is checked: a namespace whose dump is malformed is skipped with the reason, the others
    stay audited; a malformed namespace part as a whole is a DumpError (the host is bad_output)."""
    from tcpaudit.collect.dump import DumpError
    from tcpaudit.collect.netns_remote import remote_netns

    pods = [cluster.pod(PLAIN), cluster.pod(PLAIN)]
    data = _local_dump()
    victim = pods[0].inode
    marker = f"@@tcpaudit-netns-enter {victim} ".encode()
    at = data.index(marker)
    inner = data.index(b"\n@@tcpaudit-collector 1\n", at) + 1
    broken = data[:inner] + b"@@tcpaudit-collector 1\n@@tcpaudit-begin bogus-item\n" + data[inner + 23 :]
    caps = {c.entry.inode: c for c in remote_netns(broken).captures("h")}
    assert caps[victim].status == "skipped" and "bad collector output" in (caps[victim].error or "")
    assert caps[pods[1].inode].status == "ok"

    for bad in (
        data.replace(b"@@tcpaudit-netns-done\n", b""),  # cut short
        data.replace(marker, b"@@tcpaudit-netns-enter 12x "),  # not a number
        data.replace(b"@@tcpaudit-begin netns.pids\n", b"@@tcpaudit-begin netns.pids\nforged line\n"),
        data + b"@@tcpaudit-netns-enter 1 pid 1\n",  # after done
    ):
        with pytest.raises(DumpError):
            remote_netns(bad)


@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox is not installed")
def test_busybox_userland_all_netns(cluster, tmp_path) -> None:  # noqa: F811
    """busybox ash with busybox applets only (its ls, sort, readlink and nsenter): the same namespaces and names."""
    from tcpaudit.collect.netns_remote import remote_netns

    pod = cluster.pod(POD)
    named = cluster.named_netns()
    bb = shutil.which("busybox")
    assert bb is not None
    bindir = tmp_path / f"{PREFIX}bb"
    bindir.mkdir()
    for applet in ("sh", "cat", "grep", "sed", "head", "uname", "id", "ls", "sort", "readlink", "nsenter"):
        (bindir / applet).symlink_to(bb)
    r = subprocess.run(
        [str(bindir / "sh"), "-s", "all-netns"],
        stdin=open(sshd.COLLECTOR, "rb"),
        capture_output=True,
        timeout=120,
        env={"PATH": str(bindir), "LC_ALL": "C"},
    )
    assert r.returncode == 0, r.stderr
    caps = {c.entry.inode: c for c in remote_netns(r.stdout).captures("h")}
    t = caps[pod.inode]
    assert t.status == "ok" and t.name == f"netns:{pod.expected_name}", (t.status, t.error)
    assert t.snapshot is not None and t.snapshot.sysctls["net.ipv4.ip_local_port_range"] == "20000 20999"
    assert caps[named.inode].status == "ok" and caps[named.inode].name == f"netns:{named.name}"


def test_session_in_another_namespace_than_the_host(cluster, server) -> None:  # noqa: F811
    """sshd's sessions run inside a named namespace (ForceCommand nsenter ...: an sshd in a container with
    hostPID): the host namespace (init's, or kthreadd's) is entered like any other and is still the host target,
    with the host's own values; the session's namespace is one namespace target among the others."""
    named = cluster.named_netns()
    named.exec(["sysctl", "-qw", "net.ipv4.ip_local_port_range=30000 30999"])
    wrapper = f'nsenter --net=/run/netns/{named.name} sh -c "$SSH_ORIGINAL_COMMAND"'
    s = server(force_command=wrapper)
    rc, report, stderr = remote(server, s)
    assert rc in (0, 1, 3), stderr
    found = by_inode(report)
    assert all(len(ts) == 1 for ts in found.values())
    (host,) = found[host_inode()]
    assert host["kind"] == "host" and host["name"] == f"127.0.0.1:{s.port}" and host["status"] == "ok"
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        assert host["sysctls"]["net.ipv4.ip_local_port_range"] == " ".join(f.read().split())
    assert report["targets"][0]["name"] == host["name"]
    (t,) = found[named.inode]
    assert t["kind"] == "netns" and t["name"] == f"netns:{named.name}" and t["status"] == "ok"
    assert t["sysctls"]["net.ipv4.ip_local_port_range"] == "30000 30999"
    assert report["extra"]["netns"]["host_inode"] == host_inode()


_DUMP: list[bytes] = []


def _dump_once() -> bytes:
    if not _DUMP:
        _DUMP.append(_local_dump())
    return _DUMP[0]


@pytest.mark.parametrize("seed", range(40))
def test_mutated_namespace_parts_fail_cleanly(seed: int) -> None:
    """A namespace part with a line dropped, repeated, replaced or cut: a DumpError or usable captures, never
    another exception (what a broken or hostile host can send)."""
    import random

    from tcpaudit.collect.dump import DumpError
    from tcpaudit.collect.netns_remote import remote_netns

    data = _dump_once()
    cut = data.index(b"\n@@tcpaudit-done\n") + 17
    head, lines = data[:cut], data[cut:].split(b"\n")
    rng = random.Random(seed)
    i = rng.randrange(len(lines))
    junk = [
        b"@@tcpaudit-netns-enter 1 pid 1",
        b"@@tcpaudit-end netns.pids rc=0",
        b"|x",
        b"\x1b[2Jhi",
        b"",
        b"@@tcpaudit-done",
    ]
    op = seed % 4
    if op == 0:
        del lines[i]
    elif op == 1:
        lines.insert(i, lines[i])
    elif op == 2:
        lines[i] = rng.choice(junk)
    else:
        lines = lines[:i]
    try:
        rn = remote_netns(head + b"\n".join(lines), cut_short="test" if seed % 8 == 7 else None)
    except DumpError:
        return
    if rn.enum is None:
        assert rn.unavailable
        return
    seen = [c.entry.inode for c in rn.captures("h")]
    assert len(seen) == len(set(seen)) == len(rn.enum.entries)


@pytest.mark.parametrize(
    "argv",
    [
        ["host", "root@example.invalid", "--all-netns", "--sample", "1"],
        ["host", "root@example.invalid", "--all-netns", "--save-snapshot", "x.json"],
        ["fleet", "root@example.invalid", "--all-netns", "--sample", "1"],
        ["fleet", "root@example.invalid", "--all-netns", "--save-snapshots", "dir"],
    ],
)
def test_what_does_not_combine_with_remote_all_netns_yet(argv: list[str], tmp_path) -> None:
    r = sshd.run_tcpaudit(argv, timeout=60)
    assert r.returncode == 2 and r.stdout == b""
    err = r.stderr.decode()
    assert err.count("\n") == 1 and "--all-netns" in err and "Traceback" not in err


@pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare is not installed")
def test_not_linux_says_so(tmp_path) -> None:
    """No /proc (a tmpfs over it, in a mount namespace of its own) and a `uname -s` that answers FreeBSD (a
    script first on PATH: the one simulated part): the host's namespaces are unavailable, and why."""
    from tcpaudit.collect.netns_remote import remote_netns

    fake = tmp_path / f"{PREFIX}bin"
    fake.mkdir()
    sshd.write_script(fake / "uname", '#!/bin/sh\n[ "$1" = -s ] && echo FreeBSD || echo 14.1-RELEASE\n')
    inner = f"mount -t tmpfs {PREFIX}proc /proc && exec sh -s all-netns"
    r = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", inner],
        stdin=open(sshd.COLLECTOR, "rb"),
        capture_output=True,
        timeout=120,
        env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"},
    )
    assert r.returncode == 0, r.stderr
    rn = remote_netns(r.stdout)
    assert rn.enum is None and rn.unavailable == "not Linux (uname -s: FreeBSD)"
