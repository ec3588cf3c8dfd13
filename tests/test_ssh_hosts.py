"""The SSH collector against real OpenSSH servers (sshd on 127.0.0.1 high ports, or in network namespaces).

No mocks: every case is a real sshd whose behaviour is set by its config (ForceCommand, keys, namespaces).
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sshd  # noqa: E402  (tests/sshd.py: shared helpers, imported explicitly)

from tcpaudit.collect.ssh import (  # noqa: E402
    SSHCollector,
    SSHSettings,
    parse_destination,
)
from tcpaudit.model import TargetStatus  # noqa: E402

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.skipif(not sshd.have_sshd(), reason="OpenSSH server (/usr/sbin/sshd) not installed"),
]
root_only = pytest.mark.skipif(not sshd.have_netns(), reason="needs root and `ip netns` (CI runs as root)")

# Hosts that should fail fast get short limits (HANG_T, DRIP_T); hosts that should work get generous ones,
# so a loaded machine (2 cores, other suites running) slows them down without failing them.
CONNECT_T = 10.0
COMMAND_T = 30.0
HANG_T = 2.0
DRIP_T = 3.0
USER = sshd.login_user() if sshd.have_sshd() else "root"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("ssh")


@pytest.fixture(scope="module")
def keys(work):
    return sshd.make_keys(work)


@pytest.fixture(scope="module")
def servers(work, keys):
    """Start servers lazily by name, stop them all at the end of the module."""
    started: dict[str, sshd.SSHServer] = {}

    def get(name: str, **kw) -> sshd.SSHServer:
        if name not in started:
            s = sshd.SSHServer(work, keys, name=name, **kw).start()
            with open(keys.known_hosts, "a") as f:
                f.write(s.known_line())
            started[name] = s
        return started[name]

    yield get
    for s in started.values():
        s.stop()


@pytest.fixture(scope="module")
def healthy(servers):
    return servers("healthy")


def collector(keys, **kw) -> SSHCollector:
    base = dict(
        known_hosts=keys.known_hosts,
        identities=[keys.client_key],
        ssh_config=sshd.empty_config(keys),
        connect_timeout=CONNECT_T,
        command_timeout=COMMAND_T,
        use_agent=False,
    )
    base.update(kw)
    return SSHCollector(SSHSettings(**base))


def dest(server, user: str = USER):
    return parse_destination(f"{user}@{server.address}:{server.port}")


def cli_args(keys, known_hosts: Path | None = None) -> list[str]:
    args = sshd.ssh_args(keys, CONNECT_T, COMMAND_T)
    if known_hosts is not None:
        args[args.index("--known-hosts") + 1] = str(known_hosts)
    return args


def findings(report: dict) -> set[tuple[str, str]]:
    return {(f["rule"], f["severity"]) for t in report["targets"] for f in t["findings"]}


def outcomes(report: dict) -> dict[str, str]:
    return {c["rule"]: c["outcome"] for c in report["targets"][0]["checks"]}


# ---- acceptance: remote == local -------------------------------------------------------------------------
def test_remote_host_gives_the_same_findings_as_local(healthy, keys, tmp_path):
    env = {"KUBERNETES_SERVICE_HOST": ""}  # sshd sessions do not inherit it; compare like with like
    # Sockets and counters move between two collections; other activity on the machine can change a
    # socket-driven finding in between, so compare a few back-to-back pairs and require one exact match.
    for _attempt in range(3):
        remote = sshd.run_tcpaudit(
            [
                "host",
                f"{USER}@127.0.0.1",
                "-p",
                str(healthy.port),
                *cli_args(keys),
                "-f",
                "json",
                "--save-snapshot",
                str(tmp_path / "remote.json"),
            ],
            env=env,
        )
        local = sshd.run_tcpaudit(["host", "-f", "json", "--save-snapshot", str(tmp_path / "local.json")], env=env)
        assert remote.returncode in (0, 1), remote.stderr
        assert local.returncode in (0, 1), local.stderr
        r, l_ = json.loads(remote.stdout), json.loads(local.stdout)
        rs, ls = (json.loads((tmp_path / f).read_text()) for f in ("remote.json", "local.json"))
        if findings(r) == findings(l_) and outcomes(r) == outcomes(l_):
            break
    assert r["targets"][0]["status"] == "ok"
    assert r["targets"][0]["name"] == f"127.0.0.1:{healthy.port}"
    assert findings(r) == findings(l_), findings(r) ^ findings(l_)
    assert outcomes(r) == outcomes(l_)
    assert rs["source"] == "ssh" and ls["source"] == "local"
    for key in ("hostname", "kernel", "distro", "sysctl_roots", "environment"):
        assert rs[key] == ls[key], key
    a, b = sshd.comparable_sysctls(rs["sysctls"], ls["sysctls"])
    assert a == b
    assert sshd.comparable_gaps(rs["gaps"]) == sshd.comparable_gaps(ls["gaps"])
    # the remote collector runs ss; locally the same table comes over sock_diag
    assert (rs["sockets"]["source"], ls["sockets"]["source"]) == ("ss", "netlink")


def test_sample_runs_the_collector_twice_on_one_connection(healthy, keys):
    res = collector(keys).collect(dest(healthy), sample_s=0.3)
    assert res.status is TargetStatus.ok, res.error
    prev = res.snapshot.previous
    assert prev is not None and 0.3 <= prev.interval_s < 5
    assert prev.counters.get("Tcp.ActiveOpens") is not None


# ---- host keys ---------------------------------------------------------------------------------------------
def test_unknown_host_key_refused_then_accepted_with_accept_new(healthy, keys, tmp_path):
    kh = tmp_path / "known_hosts"
    target = f"{USER}@127.0.0.1:{healthy.port}"
    p = sshd.run_tcpaudit(["host", target, *cli_args(keys, kh), "-f", "json"])
    assert p.returncode == 3
    t = json.loads(p.stdout)["targets"][0]
    assert t["status"] == "host_key_rejected" and "unknown host key" in t["error"]
    assert not kh.exists() or kh.read_text() == ""
    p = sshd.run_tcpaudit(["host", target, *cli_args(keys, kh), "--accept-new", "-f", "json"])
    assert p.returncode in (0, 1), p.stderr
    assert json.loads(p.stdout)["targets"][0]["status"] == "ok"
    assert kh.read_text() == healthy.known_line()
    p = sshd.run_tcpaudit(["host", target, *cli_args(keys, kh), "-f", "json"])  # recorded: accepted now
    assert json.loads(p.stdout)["targets"][0]["status"] == "ok"
    assert (kh.stat().st_mode & 0o777) == 0o600


def test_changed_host_key_is_always_refused(healthy, keys, tmp_path):
    other = sshd.keygen(tmp_path / "other_host_key")
    kh = tmp_path / "known_hosts"
    kh.write_text(healthy.known_line(other))
    before = kh.read_text()
    for extra in ([], ["--accept-new"]):
        c = collector(keys, known_hosts=kh, accept_new=bool(extra))
        res = c.collect(dest(healthy))
        assert res.status is TargetStatus.host_key_rejected, res.error
        assert "does not match" in (res.error or "")
    assert kh.read_text() == before


def test_known_hosts_markers_as_openssh_reads_them(healthy, keys, tmp_path):
    """@cert-authority lines (host certificates: not supported) and lines that do not parse are skipped,
    not fatal for every host; a @revoked key is refused even when it is also listed, and with --accept-new."""
    plain = healthy.known_line()
    host_field, key_type, blob = plain.split()[:3]
    kh = tmp_path / "known_hosts"
    kh.write_text(f"@cert-authority *.corp.example {key_type} {blob}\nbroken-host ssh-ed25519 not!base64\n" + plain)
    res = collector(keys, known_hosts=kh).collect(dest(healthy))
    assert res.status is TargetStatus.ok, res.error
    kh.write_text(f"@revoked * {key_type} {blob}\n" + plain)
    for accept_new in (False, True):
        res = collector(keys, known_hosts=kh, accept_new=accept_new).collect(dest(healthy))
        assert res.status is TargetStatus.host_key_rejected, res.error
        assert "@revoked" in (res.error or "")


def test_host_key_of_another_type_does_not_count_as_known(healthy, keys, tmp_path):
    rsa = sshd.keygen(tmp_path / "rsa_host_key", "rsa")
    kh = tmp_path / "known_hosts"
    kh.write_text(healthy.known_line(rsa))
    res = collector(keys, known_hosts=kh, accept_new=True).collect(dest(healthy))
    assert res.status is TargetStatus.host_key_rejected


# ---- failures map to statuses --------------------------------------------------------------------------------
def test_refused_connection_is_unreachable(keys):
    refused = sshd.RefusingPort()  # bound, never listening: nothing can listen there meanwhile
    try:
        res = collector(keys).collect(parse_destination(f"{USER}@127.0.0.1:{refused.port}"))
    finally:
        refused.stop()
    assert res.status is TargetStatus.unreachable
    assert "refused" in (res.error or "").lower()


def test_host_that_never_sends_a_banner_times_out(keys):
    silent = sshd.SilentServer()
    try:
        t0 = time.monotonic()
        res = collector(keys, connect_timeout=HANG_T).collect(parse_destination(f"{USER}@127.0.0.1:{silent.port}"))
        elapsed = time.monotonic() - t0
    finally:
        silent.stop()
    assert res.status is TargetStatus.timeout, res.error
    # gave up at its own connect timeout: not before it, and well before the 10 s default (slack for a loaded machine)
    assert HANG_T - 0.05 <= res.connect_s and elapsed < HANG_T + 5 < CONNECT_T, (res.connect_s, elapsed)


@pytest.mark.root
@root_only
def test_host_dropping_all_packets_times_out(keys):
    ns = sshd.NetNS(drop_input=True)
    try:
        t0 = time.monotonic()
        res = collector(keys, connect_timeout=HANG_T).collect(parse_destination(f"{USER}@{ns.address}:22"))
        elapsed = time.monotonic() - t0
    finally:
        ns.delete()
    assert res.status is TargetStatus.timeout, res.error
    # gave up at its own connect timeout: not before it, and well before the 10 s default (slack for a loaded machine)
    assert HANG_T - 0.05 <= res.connect_s and elapsed < HANG_T + 5 < CONNECT_T, (res.connect_s, elapsed)


def test_authentication_failure(servers, keys, work):
    empty = work / "no_authorized_keys"
    empty.write_text("")
    s = servers("noauth", authorized_keys=empty)
    res = collector(keys).collect(dest(s))
    assert res.status is TargetStatus.auth_failed
    assert f"authentication as {USER} failed" in (res.error or "")


def test_garbage_output_is_bad_output(servers, keys, work):
    junk = sshd.write_script(
        work / "junk.sh",
        "#!/bin/sh\necho 'Last login: never'\necho '<html>not a dump'\nprintf '\\033[2J\\033[31mRED\\n'\nexit 0\n",
    )
    s = servers("junk", force_command=str(junk))
    res = collector(keys).collect(dest(s))
    assert res.status is TargetStatus.bad_output
    assert "\x1b" not in (res.error or "")


@pytest.mark.parametrize("command", ["yes", "cat /dev/zero", "yes '|x' | sed '1i@@tcpaudit-collector 1'"])
def test_endless_streams_are_bounded(servers, keys, command):
    s = servers(f"endless-{command.split()[0]}-{len(command)}", force_command=command)
    t0 = time.monotonic()
    res = collector(keys, max_output=8 << 20, command_timeout=DRIP_T).collect(dest(s))
    elapsed = time.monotonic() - t0
    assert res.status in (TargetStatus.bad_output, TargetStatus.timeout), res.error
    assert elapsed < CONNECT_T + DRIP_T + 1.5


def test_slow_drip_times_out(servers, keys, work):
    drip = sshd.write_script(
        work / "drip.sh",
        "#!/bin/sh\necho '@@tcpaudit-collector 1'\n"
        "echo '@@tcpaudit-begin ss'\n"
        "while :; do echo '|ESTAB 0 0 1.2.3.4:1 5.6.7.8:2'; sleep 0.3; done\n",
    )
    s = servers("drip", force_command=str(drip))
    t0 = time.monotonic()
    res = collector(keys, command_timeout=DRIP_T).collect(dest(s))
    elapsed = time.monotonic() - t0
    assert res.status is TargetStatus.timeout, res.error
    assert DRIP_T - 0.5 < elapsed < CONNECT_T + DRIP_T + 1.5


def test_host_without_ss_falls_back_to_proc_net_tcp(servers, keys, work):
    import shutil

    bindir = work / "no-ss-bin"
    bindir.mkdir(exist_ok=True)
    for tool in ("cat", "grep", "sed", "head", "uname", "id", "iptables-save"):
        src = shutil.which(tool)
        if src and not (bindir / tool).exists():
            (bindir / tool).symlink_to(src)
    wrapper = sshd.write_script(work / "no-ss.sh", f"#!/bin/sh\nPATH={bindir}\nexport PATH\nexec /bin/sh -s\n")
    s = servers("no-ss", force_command=str(wrapper))
    res = collector(keys).collect(dest(s))
    assert res.status is TargetStatus.ok, res.error
    snap = res.snapshot
    assert snap.sockets.source == "proc"
    assert snap.sockets.total > 0
    assert any(g.item == "ss" and g.reason.value == "missing" for g in snap.gaps)


def test_hostile_host_strings_are_neutralised(servers, keys, work):
    evil = sshd.write_script(
        work / "evil.sh",
        "#!/bin/sh\n"
        "printf '@@tcpaudit-collector 1\\n@@tcpaudit-begin hostname\\n|\\033[2Jevil\\n'\n"
        "printf '@@tcpaudit-end hostname rc=0\\n@@tcpaudit-begin osrelease\\n'\n"
        "printf '|6.1.0\\033]0;pwned\\007\\n@@tcpaudit-end osrelease rc=0\\n@@tcpaudit-done\\n'\n",
    )
    s = servers("evil", force_command=str(evil))
    p = sshd.run_tcpaudit(["host", f"{USER}@127.0.0.1:{s.port}", *cli_args(keys)])
    assert p.returncode in (0, 1), p.stderr
    assert b"\x1b" not in p.stdout and b"\x07" not in p.stdout
    assert b"6.1.0\\x1b]0;pwned" in p.stdout


# ---- sudo ---------------------------------------------------------------------------------------------------
def _sudo_server(servers, work, name: str, sudo_body: str):
    fake = work / f"fake-sudo-{name}"
    fake.mkdir(exist_ok=True)
    sshd.write_script(fake / "sudo", sudo_body)
    log = work / f"{name}.cmd"
    rec = sshd.write_script(
        work / f"{name}.sh",
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$SSH_ORIGINAL_COMMAND\" >> {log}\n"
        f"PATH={fake}:$PATH\nexport PATH\n"
        'case "$SSH_ORIGINAL_COMMAND" in\n'
        "  'sh -s') exec sh -s ;;\n"
        "  'sudo -n sh -s') exec sudo -n sh -s ;;\n"
        "  *) echo unexpected command >&2; exit 99 ;;\n"
        "esac\n",
    )
    return servers(name, force_command=str(rec)), log


def test_sudo_runs_the_fixed_command_with_sudo_n(servers, keys, work):
    s, log = _sudo_server(
        servers,
        work,
        "sudo-ok",
        '#!/bin/sh\n[ "$1" = -n ] || { echo \'sudo: -n missing\' >&2; exit 1; }\nshift\nexec "$@"\n',
    )
    res = collector(keys, sudo=True).collect(dest(s))
    assert res.status is TargetStatus.ok, res.error
    res = collector(keys).collect(dest(s))
    assert res.status is TargetStatus.ok, res.error
    assert log.read_text().splitlines() == ["sudo -n sh -s", "sh -s"]


def test_sudo_that_wants_a_password_is_reported(servers, keys, work):
    s, _ = _sudo_server(servers, work, "sudo-pw", "#!/bin/sh\necho 'sudo: a password is required' >&2\nexit 1\n")
    res = collector(keys, sudo=True).collect(dest(s))
    assert res.status is TargetStatus.auth_failed
    assert "sudo: a password is required" in (res.error or "")


def test_encrypted_key_with_the_prompted_passphrase(healthy, keys, work):
    enc = work / "enc_id"
    if not enc.exists():
        import subprocess

        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "pass-Phrase-9", "-f", str(enc)],
            check=True,
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )
        with open(keys.authorized_keys, "a") as f:
            f.write(enc.with_name("enc_id.pub").read_text())
    res = collector(keys, identities=[enc]).collect(dest(healthy))
    assert res.status is TargetStatus.auth_failed and "is encrypted" in (res.error or "")
    res = collector(keys, identities=[enc], password="wrong").collect(dest(healthy))
    assert res.status is TargetStatus.auth_failed and "wrong passphrase" in (res.error or "")
    res = collector(keys, identities=[enc], password="pass-Phrase-9").collect(dest(healthy))
    assert res.status is TargetStatus.ok, res.error


# ---- secrets ------------------------------------------------------------------------------------------------
def test_password_prompt_is_never_echoed_or_reported(servers, keys, work, tmp_path):
    (work / "no_authorized_keys_pw").write_text("")
    s = servers("password", password_auth=True, authorized_keys=work / "no_authorized_keys_pw")
    secret = "S3cret-tcpaudit-Pa55"
    out_json = tmp_path / "report.json"
    argv = [
        *sshd.tcpaudit_argv(),
        "host",
        f"{USER}@127.0.0.1:{s.port}",
        "--password-prompt",
        "--known-hosts",
        str(keys.known_hosts),
        "--ssh-config",
        str(sshd.empty_config(keys)),
        "--connect-timeout",
        "10",
        "-f",
        f"json:{out_json}",
        "-f",
        "table",
    ]
    env = dict(os.environ, PYTHONPATH=str(sshd.REPO), TCPAUDIT_DEBUG="1")
    env.pop("SSH_AUTH_SOCK", None)
    env["HOME"] = str(tmp_path)  # no default keys from ~/.ssh
    pid, fd = pty.fork()
    if pid == 0:  # child: the pty is its controlling terminal, as for a user at a terminal
        os.execve(sys.executable, argv, env)
    out = b""
    sent = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        if not sent and b"password" in out.lower():
            os.write(fd, secret.encode() + b"\n")
            sent = True
    else:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert sent, out
    assert os.WEXITSTATUS(status) == 3, out
    assert secret.encode() not in out
    report = out_json.read_text()
    assert secret not in report
    assert json.loads(report)["targets"][0]["status"] == "auth_failed"


# ---- ssh config ------------------------------------------------------------------------------------------
def test_ssh_config_host_patterns_include_and_accept_new(healthy, keys, tmp_path):
    kh = tmp_path / "kh_from_config"
    inc = tmp_path / "conf.d"
    inc.mkdir()
    (inc / "10-web.conf").write_text(f"Host web-*\n  HostName 127.0.0.1\n  Port {healthy.port}\n  User {USER}\n")
    cfg = tmp_path / "ssh_config"
    cfg.write_text(
        f"Include {inc}/*.conf\n"
        "Host *\n"
        f"  IdentityFile {keys.client_key}\n"
        f"  UserKnownHostsFile {kh}\n"
        "  StrictHostKeyChecking accept-new\n"
        "  ConnectTimeout 2\n"
    )
    c = SSHCollector(SSHSettings(ssh_config=cfg, command_timeout=COMMAND_T, use_agent=False))
    res = c.collect(parse_destination("web-1"))
    assert res.status is TargetStatus.ok, res.error
    assert res.destination.name == "web-1"
    assert kh.read_text() == healthy.known_line()
    r = c.resolve("web-1", None, None)
    assert (r.hostname, r.port, r.user, r.connect_timeout) == ("127.0.0.1", healthy.port, USER, 2.0)


def test_proxycommand_and_match_exec_are_refused(tmp_path, keys):
    cfg = tmp_path / "cfg"
    cfg.write_text("Host evil\n  ProxyCommand touch /tmp/tcpaudit-pwned-%h\n")
    res = SSHCollector(SSHSettings(ssh_config=cfg)).collect(parse_destination("evil"))
    assert res.status is TargetStatus.error and "ProxyCommand is not supported" in (res.error or "")
    cfg.write_text('Match exec "touch /tmp/tcpaudit-pwned"\n  User x\n')
    p = sshd.run_tcpaudit(["host", "h", "--ssh-config", str(cfg)])
    assert p.returncode == 2 and b"Match exec" in p.stderr
    assert not Path("/tmp/tcpaudit-pwned").exists()


def test_proxy_jump(keys, work, tmp_path):
    """Through a jump host with a direct-tcpip channel. As root the target listens on 127.0.0.1 *inside* a
    namespace, reachable only through the jump host there."""
    kh = tmp_path / "kh"
    ns = sshd.NetNS() if sshd.have_netns() else None
    servers = []
    try:
        if ns is not None:
            jump = sshd.SSHServer(work, keys, address=ns.address, port=22, netns=ns.name, name="jump").start()
            target = sshd.SSHServer(work, keys, address="127.0.0.1", port=22, netns=ns.name, name="target")
            target.start(wait=False)
            ns.wait_listening("127.0.0.1", 22)  # not reachable from here: it is the namespace's loopback
        else:
            jump = sshd.SSHServer(work, keys, name="jump").start()
            target = sshd.SSHServer(work, keys, name="target").start()
        servers = [jump, target]
        kh.write_text(jump.known_line() + target.keys.known_line("target-alias", 22))
        cfg = tmp_path / "cfg"
        cfg.write_text(
            f"Host jumpbox\n  HostName {jump.address}\n  Port {jump.port}\n  User {USER}\n"
            f"Host inner\n  HostName 127.0.0.1\n  Port {target.port}\n  User {USER}\n"
            "  ProxyJump jumpbox\n  HostKeyAlias target-alias\n"
            f"Host *\n  IdentityFile {keys.client_key}\n  UserKnownHostsFile {kh}\n"
        )
        c = SSHCollector(
            SSHSettings(ssh_config=cfg, connect_timeout=CONNECT_T, command_timeout=COMMAND_T, use_agent=False)
        )
        try:
            res = c.collect(parse_destination("inner"))
        finally:
            c.close()
        assert res.status is TargetStatus.ok, res.error
        if ns is not None:  # the namespace's own sockets: it really ran in there
            assert ns.address in res.snapshot.sockets.local_addr
    finally:
        for s in servers:
            s.stop()
        if ns is not None:
            ns.delete()


def test_bad_user_and_port_options_are_usage_errors(keys):
    p = sshd.run_tcpaudit(["host", "h", "-l", "bad user"])
    assert p.returncode == 2 and b"user" in p.stderr
    p = sshd.run_tcpaudit(["host", "h", "-i", "/nonexistent/key"])
    assert p.returncode == 2 and b"identity file" in p.stderr
