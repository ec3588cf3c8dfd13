"""No injection, read-only collection, no leaked secrets (issue 8), against real OpenSSH servers.

- Host names, users, ports and paths from the command line, inventories and ssh_config never reach a
  shell: hostile ones are refused with one clean line (exit 2) and nothing is created; the remote side
  only ever sees the fixed command `sh -s` (`sudo -n sh -s` with --sudo) and the collector script on stdin,
  byte for byte, whoever the host, user or port.
- The collector writes nothing on the remote host: every write under /etc /root /tmp /var /home lands in
  an overlay whose upper layer must stay empty, the network namespace's sysctls are unchanged, and (when
  strace is installed) no write-mode open or other file-changing system call succeeds.
- A password or key passphrase typed at the prompt (a real pty) is never in the terminal output, the
  reports, debug logs, a traceback after authentication, or any process's argv and environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sshd  # noqa: E402  (tests/sshd.py: real OpenSSH servers)

from tcpaudit.collect.dump import collector_script  # noqa: E402
from tcpaudit.collect.ssh import (  # noqa: E402
    NETNS_COMMAND,
    REMOTE_COMMAND,
    SUDO_COMMAND,
    SUDO_NETNS_COMMAND,
    DestinationError,
    SSHCollector,
    SSHSettings,
    parse_destination,
)
from tcpaudit.fleet import InventoryError, parse_ansible_json, parse_host_list  # noqa: E402
from tcpaudit.sanitize import clean_text  # noqa: E402

REPO = sshd.REPO
USER = sshd.login_user()
needs_sshd = pytest.mark.skipif(not sshd.have_sshd(), reason="OpenSSH server (/usr/sbin/sshd) not installed")


def _overlay_works() -> bool:
    """Whether this kernel and container allow an overlay mount in a private mount namespace."""
    if not (sshd.have_netns() and shutil.which("unshare")):
        return False
    probe = Path(f"/dev/shm/tcpaudit-overlay-probe-{os.getpid()}")
    try:
        for d in ("lower", "upper", "work", "merged"):
            (probe / d).mkdir(parents=True, exist_ok=True)
        p = subprocess.run(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                f"lowerdir={probe}/lower,upperdir={probe}/upper,workdir={probe}/work",
                f"{probe}/merged",
            ],
            capture_output=True,
            timeout=30,
        )
        return p.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)


needs_root = pytest.mark.skipif(
    not _overlay_works(),
    reason="needs root, `ip netns`, unshare and overlay mounts in a private mount namespace (CI runs as root)",
)


@pytest.fixture(scope="module")
def work(tmp_path_factory):  # type: ignore[no-untyped-def]
    return tmp_path_factory.mktemp("hostile-ssh")


@pytest.fixture(scope="module")
def keys(work):  # type: ignore[no-untyped-def]
    return sshd.make_keys(work)


@pytest.fixture(scope="module")
def servers(work, keys):  # type: ignore[no-untyped-def]
    started: dict[str, sshd.SSHServer] = {}

    def get(name: str, **kw) -> sshd.SSHServer:  # type: ignore[no-untyped-def]
        if name not in started:
            s = sshd.SSHServer(work, keys, name=name, **kw).start()
            with open(keys.known_hosts, "a") as f:
                f.write(s.known_line())
            started[name] = s
        return started[name]

    yield get
    for s in started.values():
        s.stop()


def one_clean_line(stderr: bytes) -> str:
    text = stderr.decode("utf-8", "replace")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1, text
    assert lines[0].startswith("tcpaudit: "), text
    assert clean_text(lines[0]) == lines[0], repr(lines[0])
    return lines[0]


# ---- no injection: what is refused before anything connects ----------------------------------------------
def hostile_hosts(canary: Path) -> list[str]:
    return [
        f"-oProxyCommand=touch {canary}",
        f"$(touch {canary})",
        f"a;touch {canary}",
        "host\nname",
        f"`touch {canary}`",
        f"a|touch {canary}",
        f"a&&touch {canary}",
        "h'o\"st",
        "a b",
        "\x1b[2Jh",
        "host\rname",
        f"x@$(touch {canary})",
        f"$(touch {canary})@h",
        f"h:22;touch {canary}",
        f"[::1]:22$(touch {canary})",
        "-",
        "--help-me",
        "h\x00x",
    ]


def test_every_hostile_destination_is_refused_by_the_parser(tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    for host in hostile_hosts(canary):
        with pytest.raises(DestinationError) as e:
            parse_destination(host)
        msg = str(e.value)
        assert "\n" not in msg and clean_text(msg) == msg, msg
        if "\n" in host or "\r" in host:
            continue  # in a file that is two lines, each a host of its own
        with pytest.raises(InventoryError, match=r"^hosts\.txt:2: "):
            parse_host_list(f"ok-host\n{host}\n", "hosts.txt")


@pytest.mark.parametrize("command", ["host", "fleet"])
def test_hostile_destinations_on_the_command_line_are_refused(command: str, tmp_path: Path) -> None:
    """The brief's examples, through the real CLI: exit 2, one clean line, nothing created (not even `x`)."""
    canary = Path(f"/tmp/pwned-tcpaudit-{os.getpid()}")
    for host in [f"-oProxyCommand=touch {canary}", "$(touch x)", "a;b", "host\nname", f"`touch {canary}`"]:
        p = subprocess.run(
            [*sshd.tcpaudit_argv(), command, "--connect-timeout", "1", "--", host],
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
        )
        assert p.returncode == 2, (host, p.stderr)
        one_clean_line(p.stderr)
        assert not canary.exists() and not (tmp_path / "x").exists(), host
    # without `--` an option-looking host is an unknown option (click), never a destination
    p = sshd.run_tcpaudit([command, f"-oProxyCommand=touch {canary}"], timeout=60)
    assert p.returncode == 2 and not canary.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["-l", "-oProxyCommand=touch {c}"],
        ["-l", "a;touch {c}"],
        ["--user", "root\nx"],
        ["-p", "22;touch {c}"],
        ["-i", "$(touch {c})"],
        ["--ssh-config", "$(touch {c})"],
    ],
)
def test_hostile_users_ports_and_paths_are_refused(args: list[str], tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    p = sshd.run_tcpaudit(["host", "h", *[a.format(c=canary) for a in args]], timeout=60)
    assert p.returncode == 2, p.stderr
    assert not canary.exists()
    if args[0] != "-p":  # click reports a bad integer itself, with its usage line
        one_clean_line(p.stderr)


def test_hostile_inventory_entries_are_refused_naming_file_and_line(tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    inv = tmp_path / "hosts.txt"
    inv.write_text(f"# fleet\ngood-host\n$(touch {canary})\n")
    p = sshd.run_tcpaudit(["fleet", "--inventory", str(inv)], timeout=60)
    assert p.returncode == 2, p.stderr
    assert f"{inv}:3" in one_clean_line(p.stderr)
    for hv in (
        {"ansible_host": f"$(touch {canary})"},
        {"ansible_host": f"-oProxyCommand=touch {canary}"},
        {"ansible_user": f"a;touch {canary}"},
        {"ansible_port": f"22;touch {canary}"},
        {"ansible_user": "-oProxyCommand=x"},
        {"ansible_host": "a\nb"},
    ):
        with pytest.raises(InventoryError, match="web1") as e:
            parse_ansible_json(
                json.dumps({"_meta": {"hostvars": {"web1": hv}}, "all": {"hosts": ["web1"]}}), "inv.json"
            )
        assert clean_text(str(e.value)) == str(e.value)
    inv = tmp_path / "inv.json"
    inv.write_text(
        json.dumps(
            {"_meta": {"hostvars": {"web1": {"ansible_host": f"$(touch {canary})"}}}, "all": {"hosts": ["web1"]}}
        )
    )
    p = sshd.run_tcpaudit(["fleet", "--inventory", str(inv)], timeout=60)
    assert p.returncode == 2 and "web1" in one_clean_line(p.stderr)
    assert not canary.exists()


def test_hostile_ssh_config_values_never_run_anything(tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    cfg = tmp_path / "ssh_config"
    cfg.write_text(
        f"Host evil-hostname\n  HostName $(touch {canary})\n"
        f"Host evil-user\n  HostName 127.0.0.1\n  User -oProxyCommand=touch{canary}\n"
        f"Host evil-proxy\n  ProxyCommand touch {canary}\n"
        f"Host evil-jump\n  HostName 127.0.0.1\n  ProxyJump $(touch {canary})\n"
        f"Host evil-local\n  HostName 127.0.0.1\n  Port 1\n  PermitLocalCommand yes\n"
        f"  LocalCommand touch {canary}\n"
        f"Host evil-ident\n  HostName 127.0.0.1\n  Port 1\n  IdentityFile $(touch {canary})\n"
    )
    hosts = ["evil-hostname", "evil-user", "evil-proxy", "evil-jump", "evil-local", "evil-ident"]
    out = tmp_path / "report.json"
    p = sshd.run_tcpaudit(
        ["fleet", *hosts, "--ssh-config", str(cfg), "--connect-timeout", "2", "-f", f"json:{out}"], timeout=120
    )
    assert p.returncode == 3, p.stderr
    report = json.loads(out.read_text())
    got = {t["name"]: (t["status"], t["error"]) for t in report["targets"]}
    assert [t["name"] for t in report["targets"]] == hosts
    assert got["evil-hostname"][0] == "error" and "HostName" in got["evil-hostname"][1]
    assert got["evil-user"][0] == "error" and "user" in got["evil-user"][1]
    assert got["evil-proxy"][0] == "error" and "ProxyCommand is not supported" in got["evil-proxy"][1]
    assert got["evil-jump"][0] in ("error", "unreachable"), got["evil-jump"]
    assert got["evil-local"][0] == "unreachable" and got["evil-ident"][0] == "unreachable"
    for _status, error in got.values():
        assert error and "\n" not in error and clean_text(error) == error
    cfg.write_text(f'Match exec "touch {canary}"\n  User x\n')
    p = sshd.run_tcpaudit(["host", "h", "--ssh-config", str(cfg)], timeout=60)
    assert p.returncode == 2 and "Match exec" in one_clean_line(p.stderr)
    assert not canary.exists()


def test_no_shell_anywhere_in_the_package() -> None:
    """The only command sent is one of four constants; nothing in tcpaudit runs a shell locally."""
    assert (REMOTE_COMMAND, SUDO_COMMAND) == ("sh -s", "sudo -n sh -s")
    assert (NETNS_COMMAND, SUDO_NETNS_COMMAND) == ("sh -s all-netns", "sudo -n sh -s all-netns")
    picked = set()
    for sudo in (False, True):
        for all_netns in (False, True):
            fake = type("C", (), {"settings": SSHSettings(sudo=sudo)})()
            picked.add(SSHCollector._command(fake, all_netns))  # type: ignore[arg-type]
    assert picked == {REMOTE_COMMAND, SUDO_COMMAND, NETNS_COMMAND, SUDO_NETNS_COMMAND}
    calls = []
    for path in sorted((REPO / "tcpaudit").rglob("*.py")):
        src = path.read_text()
        for bad in ("shell=True", "os.system(", "os.popen(", "pty.spawn(", "os.exec", "commands.getoutput"):
            assert bad not in src, f"{path.relative_to(REPO)}: {bad}"
        calls += re.findall(r"exec_command\(([^)]*)\)", src)
        if "subprocess" in src:  # local tools run from fixed argv lists only, never a command string
            for m in re.finditer(r"subprocess\.(?:run|Popen|check_output|call)\(\s*([^,\n]+)", src):
                assert not m.group(1).lstrip().startswith(('"', "'", 'f"', "f'")), f"{path}: {m.group(0)}"
    assert calls == ["self._command(all_netns"], calls  # the regex stops at _command's own ")"


# ---- the remote side sees the fixed command and the script, and nothing else --------------------------------
def recorder(work: Path, name: str) -> tuple[Path, Path, Path]:
    """A ForceCommand that records SSH_ORIGINAL_COMMAND and the bytes on stdin, then runs them as sshd would.
    A fake `sudo` records its arguments and insists on -n (non-interactive)."""
    log = work / f"{name}.commands"
    stdin_dir = work / f"{name}.stdin"
    stdin_dir.mkdir(exist_ok=True)
    fake = work / f"{name}-bin"
    fake.mkdir(exist_ok=True)
    sshd.write_script(
        fake / "sudo",
        "#!/bin/sh\n"
        f"printf 'sudo %s\\n' \"$*\" >> {log}\n"
        "[ \"$1\" = -n ] || { echo 'sudo: a password is required' >&2; exit 1; }\n"
        'shift\nexec "$@"\n',
    )
    script = sshd.write_script(
        work / f"{name}.sh",
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$SSH_ORIGINAL_COMMAND\" >> {log}\n"
        f'f={stdin_dir}/$$\ncat > "$f"\n'
        f"PATH={fake}:$PATH\nexport PATH\n"
        'exec /bin/sh -c "$SSH_ORIGINAL_COMMAND" < "$f"\n',
    )
    return log, stdin_dir, script


@needs_sshd
@pytest.mark.ssh
def test_remote_command_is_fixed_whatever_the_destination(servers, keys, work, tmp_path) -> None:  # type: ignore[no-untyped-def]
    log, stdin_dir, script = recorder(work, "rec")
    s = servers("recorder", force_command=str(script))
    cfg = tmp_path / "ssh_config"
    cfg.write_text(
        f"Host alias-a weird_alias.example\n  HostName 127.0.0.1\n  Port {s.port}\n  User {USER}\n"
        f"Host *\n  IdentityFile {keys.client_key}\n  UserKnownHostsFile {keys.known_hosts}\n"
    )
    inv = tmp_path / "inv.json"
    inv.write_text(
        json.dumps(
            {
                "_meta": {
                    "hostvars": {
                        "inv-host": {"ansible_host": "127.0.0.1", "ansible_port": s.port, "ansible_user": USER}
                    }
                },
                "all": {"hosts": ["inv-host"]},
            }
        )
    )
    # Every server here answers: the timeouts only bound a hung run, so they are generous (a loaded machine can
    # take seconds for paramiko's key exchange); what is checked is the command each run sends.
    t = ["--connect-timeout", "120", "--command-timeout", "120"]
    runs = [
        ["host", f"{USER}@127.0.0.1:{s.port}", *sshd.ssh_args(keys, 120, 120)],
        ["host", "127.0.0.1", "-p", str(s.port), "-l", USER, *sshd.ssh_args(keys, 120, 120)],
        ["host", "alias-a", "--ssh-config", str(cfg), *t],
        ["fleet", "weird_alias.example", "--ssh-config", str(cfg), *t],
        ["fleet", "--inventory", str(inv), *sshd.ssh_args(keys, 120, 120)],
        ["host", f"{USER}@127.0.0.1:{s.port}", "--sudo", *sshd.ssh_args(keys, 120, 120)],
    ]
    for argv in runs:
        p = sshd.run_tcpaudit([*argv, "-f", "json"], timeout=600)
        assert p.returncode in (0, 1), (argv, p.stderr)
        target = json.loads(p.stdout)["targets"][0]
        assert target["status"] == "ok", (argv, target["error"])
    assert log.read_text().splitlines() == ["sh -s"] * 5 + ["sudo -n sh -s", "sudo -n sh -s"]
    script_bytes = collector_script().encode()
    received = sorted(stdin_dir.iterdir())
    assert len(received) == 6
    for f in received:
        assert hashlib.sha256(f.read_bytes()).hexdigest() == hashlib.sha256(script_bytes).hexdigest(), f


# ---- read-only ---------------------------------------------------------------------------------------------
OVERLAID = ("/etc", "/root", "/tmp", "/var", "/home")
HISTORY = (
    "/root/.bash_history",
    "/root/.ash_history",
    "/root/.sh_history",
    "/root/.history",
    "/root/.lesshst",
    "/root/.viminfo",
    "/root/.python_history",
)
WRITE_CALLS = (
    "creat",
    "mkdir",
    "mkdirat",
    "rmdir",
    "unlink",
    "unlinkat",
    "rename",
    "renameat",
    "renameat2",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "truncate",
    "ftruncate",
    "chmod",
    "fchmod",
    "fchmodat",
    "chown",
    "fchown",
    "lchown",
    "fchownat",
    "utimensat",
    "utimes",
    "mknod",
    "mknodat",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "removexattr",
    "mount",
    "umount2",
    "sethostname",
    "setdomainname",
)


def sandbox_script(work: Path, upper: Path, trace: Path | None, log: Path, nobody: bool) -> Path:
    """ForceCommand: the session runs in a private mount namespace where every write under OVERLAID goes
    to upper/ (tmpfs, outside those trees), optionally under strace, optionally as nobody."""
    mounts = "".join(
        f"mkdir -p {upper}/{d.strip('/')}/u {upper}/{d.strip('/')}/w && "
        f"mount -t overlay overlay -o lowerdir={d},upperdir={upper}/{d.strip('/')}/u,workdir={upper}/"
        f"{d.strip('/')}/w {d} || exit 97\n"
        for d in OVERLAID
    )
    drop = "setpriv --reuid=65534 --regid=65534 --clear-groups " if nobody else ""
    tracer = (
        f"strace -f -qq -o {trace} -e trace=open,openat,openat2,{','.join(WRITE_CALLS)} " if trace is not None else ""
    )
    inner = sshd.write_script(
        work / f"inner-{upper.name}.sh",
        "#!/bin/sh\n" + mounts + f'exec {tracer}{drop}/bin/sh -c "$SSH_ORIGINAL_COMMAND"\n',
    )
    return sshd.write_script(
        work / f"sandbox-{upper.name}.sh",
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$SSH_ORIGINAL_COMMAND\" >> {log}\n"
        f"exec unshare -m --propagation private {inner}\n",
    )


def netns_sysctls(ns: str | None) -> dict[str, str]:
    """Every /proc/sys/net value as namespace `ns` (None: this process's own namespace) sees it."""
    p = subprocess.run(
        [*(["ip", "netns", "exec", ns] if ns else []), "grep", "-r", "", "/proc/sys/net"],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
    )
    out: dict[str, str] = {}
    for line in p.stdout.splitlines():
        path, _, value = line.partition(":")
        out[path] = out.get(path, "") + value
    volatile = ("nf_conntrack_count", "/neigh/", "route/gc", "stable_secret")
    return {k: v for k, v in out.items() if not any(x in k for x in volatile)}


def changed_in_the_namespace(
    before: dict[str, str], after: dict[str, str], host_before: dict[str, str], host_after: dict[str, str]
) -> dict[str, tuple[str | None, str | None]]:
    """Keys whose value the namespace owns and that changed during the sweep.

    Some keys under /proc/sys/net are global: every namespace shows the initial namespace's value (e.g.
    net.netfilter.nf_hooks_lwtunnel, which only ever switches on, whoever loads a module that needs it). Another
    process on a shared machine can change them while the test runs; such a change shows the same old and new
    value in the host's namespace as in the test's, so it is left out here. A write by the collector itself to any
    key, global or not, is caught by the syscall trace (strace_writes) and the overlay upper layers.
    """
    changed = {k: (before.get(k), after.get(k)) for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    return {k: v for k, v in changed.items() if not (host_before.get(k) == v[0] and host_after.get(k) == v[1])}


def strace_writes(trace: Path) -> list[str]:
    bad = []
    for line in trace.read_text(errors="replace").splitlines():
        m = re.match(r"^\d+\s+(\w+)\((.*)\)\s+=\s+(-?\d+)", line)
        if not m or int(m.group(3)) < 0:
            continue  # failed calls changed nothing (unfinished/resumed lines are checked when they resume)
        call, args = m.group(1), m.group(2)
        if call in ("open", "openat", "openat2"):
            if re.search(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND", args) and '"/dev/null"' not in args:
                bad.append(line)
        elif call in WRITE_CALLS:
            bad.append(line)
    return bad


@needs_sshd
@needs_root
@pytest.mark.ssh
@pytest.mark.root
@pytest.mark.parametrize("as_nobody", [False, True], ids=["root", "nobody"])
def test_collector_writes_nothing_on_the_remote_host(keys, work, as_nobody: bool) -> None:
    """Acceptance (read-only): a sweep changes no file under /etc /root /tmp /var /home (shell history
    included) and no sysctl of the host; without --sudo a non-root login reports NAT rules as a gap."""
    tag = "nobody" if as_nobody else "root"
    upper = Path(f"/dev/shm/tcpaudit-readonly-{os.getpid()}-{tag}")  # tmpfs outside every overlaid tree
    trace = upper / "strace.log" if shutil.which("strace") else None
    log = work / f"readonly-{tag}.commands"
    upper.mkdir(parents=True)
    ns = sshd.NetNS()
    server = None
    try:
        script = sandbox_script(work, upper, trace, log, as_nobody)
        server = sshd.SSHServer(
            work, keys, address=ns.address, port=22, netns=ns.name, force_command=str(script), name=f"readonly-{tag}"
        ).start()
        kh = work / f"kh-readonly-{tag}"
        kh.write_text(server.known_line())
        # host first, namespace second here and the other way round after the sweep: a global key that flips
        # at any moment then shows the same change in both, or none in the namespace (changed_in_the_namespace)
        host_before = netns_sysctls(None)
        before = netns_sysctls(ns.name)
        history = {h: Path(h).stat().st_mtime if Path(h).exists() else None for h in HISTORY}
        out = work / f"readonly-{tag}.json"
        p = sshd.run_tcpaudit(
            [
                "fleet",
                f"{USER}@{ns.address}",
                *sshd.ssh_args(keys, 60, 120),
                "--known-hosts",
                str(kh),
                "-f",
                f"json:{out}",
                "--sample",
                "1",
            ],
            timeout=300,
        )
        assert p.returncode in (0, 1), p.stderr.decode(errors="replace")
        target = json.loads(out.read_text())["targets"][0]
        assert target["status"] == "ok", target["error"]
        assert log.read_text().splitlines() == ["sh -s", "sh -s"]  # two samples, never sudo unless asked
        written = sorted(str(q.relative_to(upper)) for d in OVERLAID for q in (upper / d.strip("/") / "u").rglob("*"))
        assert written == [], written  # overlay upper layers: every created, changed or deleted path
        after = netns_sysctls(ns.name)
        host_after = netns_sysctls(None)
        assert changed_in_the_namespace(before, after, host_before, host_after) == {}
        assert {h: Path(h).stat().st_mtime if Path(h).exists() else None for h in HISTORY} == history
        if trace is not None:
            assert trace.stat().st_size > 0
            assert strace_writes(trace) == []
        nat_gap = [g for g in target["gaps"] if g.startswith("iptables-nat")]
        if as_nobody:  # what needs root is a gap, not an error and not a silent "no NAT rules"
            assert nat_gap and "permission_denied" in nat_gap[0], target["gaps"]
        else:
            assert not nat_gap, target["gaps"]
    finally:
        if server is not None:
            server.stop()
        ns.delete()
        shutil.rmtree(upper, ignore_errors=True)


# ---- secrets -----------------------------------------------------------------------------------------------
SECRET = f"Pa55-Secret-{os.getpid()}-tcpaudit"
DEBUG_MAIN = (
    "import logging, sys\n"
    "logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format='%(name)s %(message)s')\n"
    "import tcpaudit.audit\n"
    "if sys.argv[1] == 'boom':\n"
    "    def boom(*a, **k):\n"
    "        raise RuntimeError('forced failure after authentication')\n"
    "    tcpaudit.audit.build_report = boom\n"
    "sys.argv = ['tcpaudit', *sys.argv[2:]]\n"
    "from tcpaudit.cli import main\n"
    "main()\n"
)


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def run_with_prompt(
    argv: list[str], env: dict[str, str], answer: str, timeout: float = 120
) -> tuple[int, bytes, list[bytes]]:
    """Run in a real pty, type `answer` at the password prompt; meanwhile read the argv and environment of
    the process and all its descendants from /proc. Returns (exit status, terminal output, /proc reads)."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execve(argv[0], argv, env)
    out = b""
    seen: list[bytes] = []
    sent = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for p in _tree(pid):
                for what in ("cmdline", "environ"):
                    try:
                        with open(f"/proc/{p}/{what}", "rb") as f:
                            seen.append(f.read())
                    except OSError:
                        pass
            r, _, _ = select.select([fd], [], [], 0.05)
            if r:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            if not sent and b"passphrase for" in out.lower():
                os.write(fd, answer.encode() + b"\n")
                sent = True
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert sent, out
    return os.waitstatus_to_exitcode(status), out, seen


@pytest.fixture(scope="module")
def encrypted_key(work):  # type: ignore[no-untyped-def]
    """A client key protected by SECRET, authorised on the servers below."""
    path = work / "enc_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", SECRET, "-C", "enc", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    ak = work / "enc_authorized_keys"
    ak.write_text(path.with_name("enc_key.pub").read_text())
    return path, ak


@needs_sshd
@pytest.mark.ssh
@pytest.mark.parametrize(
    "case", ["error-after-auth", "fleet-ok", "traceback-after-use", "wrong-passphrase", "password-sent-to-server"]
)
def test_secret_never_leaks(case: str, servers, keys, work, encrypted_key, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The prompt's answer, with paramiko DEBUG logging on and TCPAUDIT_DEBUG=1 (tracebacks), against a host
    that fails after authentication, a healthy fleet host, a forced internal error after the secret was used,
    a wrong passphrase, and a server that really receives it as a password (and refuses it)."""
    key, ak = encrypted_key
    junk = sshd.write_script(work / "junk-after-auth.sh", "#!/bin/sh\necho 'not a dump'\nexit 0\n")
    (work / "no_keys").write_text("")
    server = {
        "error-after-auth": lambda: servers("enc-junk", authorized_keys=ak, force_command=str(junk)),
        "password-sent-to-server": lambda: servers("pw", password_auth=True, authorized_keys=work / "no_keys"),
    }.get(case, lambda: servers("enc-ok", authorized_keys=ak))()
    report = tmp_path / "report.json"
    sarif = tmp_path / "report.sarif"
    argv = [
        sys.executable,
        "-c",
        DEBUG_MAIN,
        "boom" if case == "traceback-after-use" else "-",
        "fleet" if case == "fleet-ok" else "host",
        f"{USER}@127.0.0.1:{server.port}",
        "--password-prompt",
        "-i",
        str(key),
        "-v",
        "--known-hosts",
        str(keys.known_hosts),
        "--ssh-config",
        str(sshd.empty_config(keys)),
        "--connect-timeout",
        "10",
        "--command-timeout",
        "60",
        "-f",
        f"json:{report}",
        "-f",
        f"sarif:{sarif}",
        "-f",
        "table",
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO), HOME=str(tmp_path), TCPAUDIT_DEBUG="1")
    env.pop("SSH_AUTH_SOCK", None)
    code, out, proc_reads = run_with_prompt(argv, env, "wrong-" + SECRET if case == "wrong-passphrase" else SECRET)
    secret = SECRET.encode()
    assert secret not in out, out[-3000:]  # not echoed, not in logs (paramiko DEBUG), table or traceback
    assert all(secret not in r for r in proc_reads)  # not in any argv or environment while it ran
    assert b"paramiko" in out  # debug logging really was on
    if case == "traceback-after-use":
        assert code == 1 and b"Traceback" in out and b"forced failure after authentication" in out
        return
    for f in (report, sarif):
        assert SECRET not in f.read_text()
    t = json.loads(report.read_text())["targets"][0]
    expected = {
        "error-after-auth": ((3,), "bad_output"),
        "fleet-ok": ((0, 1), "ok"),
        "wrong-passphrase": ((3,), "auth_failed"),
        "password-sent-to-server": ((3,), "auth_failed"),
    }[case]
    assert t["status"] == expected[1], t["error"]
    assert code in expected[0], out[-2000:]
    if case == "password-sent-to-server":
        assert "password" in t["error"]  # it was tried, and refused


def test_settings_never_show_the_password(tmp_path: Path) -> None:
    (tmp_path / "cfg").write_text("")
    s = SSHSettings(password=SECRET, use_agent=False, ssh_config=tmp_path / "cfg")
    assert SECRET not in repr(s) and SECRET not in str(s)
    c = SSHCollector(s)
    assert SECRET not in repr(c) and SECRET not in repr(vars(c).get("settings"))


def test_a_global_key_changed_by_someone_else_is_not_the_collectors_write() -> None:
    """The read-only proof ignores a global key whose change the host's namespace shows too, and no other."""
    ns_before = {"lwt": "0", "keepalive": "7200"}
    host_before = {"lwt": "0", "keepalive": "300"}
    # another process switched the global key on: both namespaces see it
    assert (
        changed_in_the_namespace(ns_before, {"lwt": "1", "keepalive": "7200"}, host_before, {**host_before, "lwt": "1"})
        == {}
    )
    # a change of the namespace's own key is reported, whatever the host did
    assert changed_in_the_namespace(ns_before, {"lwt": "0", "keepalive": "60"}, host_before, host_before) == {
        "keepalive": ("7200", "60")
    }
    # a key that appeared or vanished in the namespace only is reported
    assert changed_in_the_namespace(ns_before, {**ns_before, "new": "1"}, host_before, host_before) == {
        "new": (None, "1")
    }
