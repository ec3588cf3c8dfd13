"""Naming network namespaces: cgroup paths (as data, with their sources), mountinfo nsfs lines, pod log
directories and unique target names. No kernel state needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcpaudit._toml import tomllib
from tcpaudit.collect.netns import (
    Enumeration,
    NetnsEntry,
    name_entries,
    nsfs_mounts,
    parse_proc_cgroup,
    pod_names,
    target_names,
)

CASES = tomllib.loads((Path(__file__).resolve().parents[1] / "fixtures/netns/cgroup_paths.toml").read_text())["case"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_cgroup_shapes(case: dict) -> None:
    assert case["source"], "every shape says where it comes from"
    got = parse_proc_cgroup(case["cgroup"].strip())
    assert got.pod_uid == case.get("pod_uid")
    assert got.qos_class == case.get("qos_class")
    assert got.container_id == case.get("container_id")
    assert got.runtime == case.get("runtime")


def test_nsfs_mounts_from_mountinfo() -> None:
    text = (
        "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
        "530 25 0:4 net:[4026532174] /run/netns/ta-netns-a rw - nsfs nsfs rw\n"
        "531 25 0:4 net:[4026532174] /run/netns/ta-netns-a rw - nsfs nsfs rw\n"
        "532 25 0:4 net:[4026532300] /var/run/docker/netns/1a2b3c rw shared:5 - nsfs nsfs rw\n"
        "533 25 0:4 net:[4026532301] /run/netns/with\\040space rw - nsfs nsfs rw\n"
        "534 25 0:4 mnt:[4026532302] /run/mntns rw - nsfs nsfs rw\n"
        "535 25 0:4 net:[4026532303] /run/netns/cni-1234 rw - tmpfs tmpfs rw\n"
        "garbage\n"
    )
    assert nsfs_mounts(text) == [
        (4026532174, "/run/netns/ta-netns-a"),
        (4026532174, "/run/netns/ta-netns-a"),
        (4026532300, "/var/run/docker/netns/1a2b3c"),
        (4026532301, "/run/netns/with space"),
    ]


def test_pod_names_from_log_dirs(tmp_path: Path) -> None:
    (tmp_path / "kube-system_coredns-5d78c9869d-abcde_5f1d7c1e-8a2b-4c3d-9e4f-0a1b2c3d4e5f").mkdir()
    (tmp_path / "not-a-pod-dir").mkdir()
    assert pod_names(str(tmp_path)) == {"5f1d7c1e-8a2b-4c3d-9e4f-0a1b2c3d4e5f": "kube-system/coredns-5d78c9869d-abcde"}
    assert pod_names(str(tmp_path / "missing")) == {}


def _fake_proc(tmp_path: Path, pid: int, cgroup: str, comm: str) -> None:
    d = tmp_path / "proc" / str(pid)
    d.mkdir(parents=True)
    (d / "cgroup").write_text(cgroup)
    (d / "comm").write_text(comm + "\n")


def test_names_and_unique_target_names(tmp_path: Path) -> None:
    uid = "5f1d7c1e-8a2b-4c3d-9e4f-0a1b2c3d4e5f"
    logs = tmp_path / "pods"
    logs.mkdir()
    (logs / f"shop_cart-7d9f_{uid}").mkdir()
    _fake_proc(tmp_path, 10, "0::/init.scope", "systemd")
    _fake_proc(
        tmp_path,
        20,
        f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid.replace('-', '_')}.slice",
        "pause",
    )
    _fake_proc(tmp_path, 30, "0::/kubepods.slice/kubepods-podaaaaaaaa_bbbb_cccc_dddd_eeeeeeeeeeee.slice", "pause")
    _fake_proc(tmp_path, 40, "0::/user.slice", "sleep")
    _fake_proc(tmp_path, 50, "0::/user.slice", "sleep")
    entries = [
        NetnsEntry(1, [10]),
        NetnsEntry(2, [20]),
        NetnsEntry(3, [30]),
        NetnsEntry(4, [40]),
        NetnsEntry(5, [50]),
        NetnsEntry(6, [], ["/run/netns/blue"], ["/run/netns/blue"]),
    ]
    enum = Enumeration(host_inode=1, host_from="pid 1", own_inode=1, entries=entries)
    name_entries(enum, proc=str(tmp_path / "proc"), pod_log_dir=str(logs))
    info = {e.inode: e.info for e in entries}
    assert info[1].is_host and info[1].name_source == "host"
    assert (info[2].pod, info[2].pod_uid, info[2].qos_class, info[2].name_source) == (
        "shop/cart-7d9f",
        uid,
        "burstable",
        "pod-log-dir",
    )
    assert (info[3].name, info[3].name_source, info[3].qos_class) == (
        "podaaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        "cgroup",
        "guaranteed",
    )
    assert (info[4].name, info[4].name_source) == ("sleep", "comm")
    assert (info[6].name, info[6].name_source, info[6].bind_mounts) == ("blue", "bind-mount", ["/run/netns/blue"])
    names = target_names(enum, "node1")
    assert names == {
        1: "node1",
        2: "netns:shop/cart-7d9f",
        3: "netns:podaaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        4: "netns:sleep@4",
        5: "netns:sleep@5",
        6: "netns:blue",
    }
    assert len(set(names.values())) == len(names)
