"""What a thread sees after setns(CLONE_NEWNET), proved on the running kernel (the reasons the --all-netns
collector reads where it reads; tcpaudit/collect/netns.py cites the kernel source):

- /proc/sys/net/... opened by the thread shows the thread's namespace (the sysctl lookup is by `current`);
- /proc/net/... is the thread-group leader's (the main thread's) namespace: /proc/net links to self/net;
  /proc/thread-self/net/... is the thread's;
- /proc/PID/root/proc/sys/net/... shows the *reader's* namespace, not PID's;
- a sock_diag netlink socket created in the thread dumps the thread's namespace;
- the main thread never moves.
"""

from __future__ import annotations

import os
import threading

import pytest

from tcpaudit.collect.netns import CLONE_NEWNET, setns_function
from tcpaudit.collect.sockdiag import dump_tcp

from .netns_pods import cluster  # noqa: F401 - fixture

pytestmark = pytest.mark.root

LISTENER = r"""
sysctl("net.ipv4.ip_local_port_range", "40000 40999")
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(4)
ready(inode=netns_inode(), port=srv.getsockname()[1], sock=os.fstat(srv.fileno()).st_ino)
for _ in commands():
    pass
"""


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _sockets(proc_net_tcp: str) -> set[int]:
    """The socket inodes of a /proc/net/tcp text (unique on the whole system, unlike port numbers)."""
    return {int(line.split()[9]) for line in proc_net_tcp.splitlines()[1:] if line.strip()}


def test_thread_setns_views(cluster) -> None:  # noqa: F811
    pod = cluster.pod(LISTENER)
    sock = pod.info["sock"]
    main_ns = os.stat("/proc/self/ns/net").st_ino
    assert pod.inode != main_ns
    host_range = _read("/proc/sys/net/ipv4/ip_local_port_range")
    seen: dict[str, object] = {}

    def worker() -> None:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open(f"/proc/{pod.pid}/ns/net", os.O_RDONLY)
        setns = setns_function()
        try:
            setns(fd, CLONE_NEWNET)
            seen["thread_ns"] = os.stat("/proc/thread-self/ns/net").st_ino
            seen["process_ns"] = os.stat("/proc/self/ns/net").st_ino  # the thread-group leader's
            seen["sysctl"] = _read("/proc/sys/net/ipv4/ip_local_port_range")
            seen["thread_tcp"] = _sockets(_read("/proc/thread-self/net/tcp"))
            seen["proc_net_tcp"] = _sockets(_read("/proc/net/tcp"))
            seen["root_proc_sys"] = _read(f"/proc/{pod.pid}/root/proc/sys/net/ipv4/ip_local_port_range")
            cols, _ = dump_tcp(proc_net="/proc/thread-self/net")
            seen["sock_diag"] = set(cols["inode"])
        finally:
            setns(home, CLONE_NEWNET)
            seen["back"] = os.stat("/proc/thread-self/ns/net").st_ino
            os.close(fd)
            os.close(home)

    t = threading.Thread(target=worker)
    t.start()
    t.join(60)
    assert seen["thread_ns"] == pod.inode
    assert seen["process_ns"] == main_ns  # /proc/self is the leader: it never moved
    # /proc/sys/net follows the reading thread
    assert seen["sysctl"].split() == ["40000", "40999"]
    assert _read("/proc/sys/net/ipv4/ip_local_port_range") == host_range  # the main thread still sees the host's
    # /proc/thread-self/net is the thread's namespace, /proc/net the main thread's
    assert sock in seen["thread_tcp"]
    assert sock not in seen["proc_net_tcp"]
    # /proc/PID/root/proc/sys is no way into PID's namespace: it shows the reader's (here: the pod's,
    # because the reading thread is in the pod; the main thread reading it gets the host's)
    assert seen["root_proc_sys"].split() == ["40000", "40999"]
    assert _read(f"/proc/{pod.pid}/root/proc/sys/net/ipv4/ip_local_port_range") == host_range
    # a netlink socket created in the thread dumps the thread's namespace
    assert sock in seen["sock_diag"]
    assert seen["back"] == main_ns
    assert os.stat("/proc/thread-self/ns/net").st_ino == main_ns
