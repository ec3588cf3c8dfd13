"""--all-netns at scale, on real kernel state: 1,000 network namespaces, each once, ok, no traceback, fds bounded.

The namespaces are made by benchmarks/netns_bench.py's ManyNetns: one holder process in a private mount
namespace, one unshare(CLONE_NEWNET) and one nsfs bind mount (`ta-nsscale-<i>`, in a tmpfs only that mount
namespace sees) per namespace - about a second for 1,000 here. tcpaudit runs in that mount namespace; when the
holder exits, on success or failure, the mounts and with them the namespaces are gone. No time is asserted.
Other processes on this machine may own namespaces too: the test asserts on its own and never on a total.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from benchmarks.netns_bench import ManyNetns, netns_unavailable

pytestmark = pytest.mark.root

N = 1000


def _fd_sampler(pid: int, peak: list[int], stop: threading.Event) -> None:
    while not stop.wait(0.05):
        try:
            peak[0] = max(peak[0], len(os.listdir(f"/proc/{pid}/fd")))
        except OSError:
            return


def test_a_thousand_namespaces_each_once_and_ok(tmp_path) -> None:
    why = netns_unavailable()
    if why:
        pytest.skip(why)
    with ManyNetns(N, sockets=False) as many:
        assert len(set(many.inodes)) == N
        proc = subprocess.Popen(
            [*many.prefix(), sys.executable, "-m", "tcpaudit", "host", "--all-netns", "--format", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,  # nsenter keeps the working directory (--wd): no .tcpaudit.toml picked up
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        peak, stop = [0], threading.Event()
        sampler = threading.Thread(target=_fd_sampler, args=(proc.pid, peak, stop), daemon=True)
        sampler.start()
        try:
            out, err = proc.communicate(timeout=600)
        finally:
            stop.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        sampler.join()
    assert "Traceback" not in err, err[-3000:]
    assert proc.returncode in (0, 1, 3), err[-2000:]  # 3: another helper's namespace may vanish meanwhile
    report = json.loads(out)
    seen: dict[int, list[dict]] = {}
    for t in report["targets"]:
        if t.get("netns"):
            seen.setdefault(t["netns"]["inode"], []).append(t)
    for inode in many.inodes:
        targets = seen.get(inode, [])
        assert len(targets) == 1, f"namespace {inode} appears {len(targets)} times"
        t = targets[0]
        assert t["status"] == "ok", (t["name"], t.get("error"))
        assert t["kind"] == "netns" and t["netns"]["name_source"] == "bind-mount"
        assert t["netns"]["name"].startswith("ta-nsscale-")
    assert len({t["name"] for t in report["targets"]}) == len(report["targets"])  # target names are unique
    assert report["extra"]["netns"]["namespaces"] == len(report["targets"])
    # One namespace at a time: the fds in use do not grow with the number of namespaces.
    assert 0 < peak[0] < 64, peak[0]
