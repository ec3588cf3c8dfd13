"""`tcpaudit lint --root DIR` applies files exactly as `sysctl --system` does (sysctl.d(5), procps sysctl(8)):

- directories /etc/sysctl.d, /run/sysctl.d, /usr/local/lib/sysctl.d, /usr/lib/sysctl.d, /lib/sysctl.d;
- a file name in an earlier directory hides the same name in later ones;
- the surviving *.conf files are applied sorted by name across all directories;
- /etc/sysctl.conf is applied last; within the sequence the later assignment wins.
"""

from __future__ import annotations

import os
from pathlib import Path

from tcpaudit.audit import AuditOptions
from tcpaudit.lint import effective_settings, lint_root, root_unit


def write(root: Path, rel: str, text: str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def order(root: Path) -> list[str]:
    return [f.removeprefix(str(root) + "/") for f in root_unit(root).files]


def effective(root: Path) -> dict[str, tuple[str, str]]:
    u = root_unit(root)
    return {
        k: (v, f"{loc.file.removeprefix(str(root) + '/')}:{loc.line}")
        for k, (v, loc) in effective_settings(u.assignments, None, None).items()
    }


def test_same_name_in_an_earlier_directory_hides_the_later_one(tmp_path: Path) -> None:
    write(tmp_path, "usr/lib/sysctl.d/50-net.conf", "net.ipv4.tcp_fin_timeout = 10\n")
    write(tmp_path, "run/sysctl.d/50-net.conf", "net.ipv4.tcp_fin_timeout = 20\n")
    write(tmp_path, "etc/sysctl.d/50-net.conf", "net.ipv4.tcp_fin_timeout = 30\n")
    write(tmp_path, "lib/sysctl.d/50-net.conf", "net.ipv4.tcp_fin_timeout = 40\n")
    assert order(tmp_path) == ["etc/sysctl.d/50-net.conf"]
    assert effective(tmp_path)["net.ipv4.tcp_fin_timeout"] == ("30", "etc/sysctl.d/50-net.conf:1")
    notes = root_unit(tmp_path).notes
    assert any("/usr/lib/sysctl.d/50-net.conf is not read" in n for n in notes)


def test_run_beats_usr_lib_and_usr_local_lib_beats_usr_lib(tmp_path: Path) -> None:
    write(tmp_path, "usr/lib/sysctl.d/10-a.conf", "net.core.somaxconn = 1\n")
    write(tmp_path, "run/sysctl.d/10-a.conf", "net.core.somaxconn = 2\n")
    write(tmp_path, "usr/lib/sysctl.d/20-b.conf", "net.core.netdev_max_backlog = 1\n")
    write(tmp_path, "usr/local/lib/sysctl.d/20-b.conf", "net.core.netdev_max_backlog = 2\n")
    assert order(tmp_path) == ["run/sysctl.d/10-a.conf", "usr/local/lib/sysctl.d/20-b.conf"]


def test_files_are_sorted_by_name_across_directories(tmp_path: Path) -> None:
    write(tmp_path, "etc/sysctl.d/99-local.conf", "net.ipv4.tcp_fin_timeout = 99\n")
    write(tmp_path, "usr/lib/sysctl.d/50-default.conf", "net.ipv4.tcp_fin_timeout = 50\n")
    write(tmp_path, "etc/sysctl.d/10-early.conf", "net.ipv4.tcp_fin_timeout = 10\n")
    write(tmp_path, "run/sysctl.d/60-run.conf", "net.core.somaxconn = 60\n")
    write(tmp_path, "lib/sysctl.d/05-lib.conf", "net.core.somaxconn = 5\n")
    assert order(tmp_path) == [
        "lib/sysctl.d/05-lib.conf",
        "etc/sysctl.d/10-early.conf",
        "usr/lib/sysctl.d/50-default.conf",
        "run/sysctl.d/60-run.conf",
        "etc/sysctl.d/99-local.conf",
    ]
    eff = effective(tmp_path)
    assert eff["net.ipv4.tcp_fin_timeout"] == ("99", "etc/sysctl.d/99-local.conf:1")
    assert eff["net.core.somaxconn"] == ("60", "run/sysctl.d/60-run.conf:1")


def test_sysctl_conf_is_applied_last(tmp_path: Path) -> None:
    write(tmp_path, "etc/sysctl.conf", "net.ipv4.tcp_fin_timeout = 1\n")
    write(tmp_path, "etc/sysctl.d/zz-last-by-name.conf", "net.ipv4.tcp_fin_timeout = 2\n")
    assert order(tmp_path) == ["etc/sysctl.d/zz-last-by-name.conf", "etc/sysctl.conf"]
    assert effective(tmp_path)["net.ipv4.tcp_fin_timeout"] == ("1", "etc/sysctl.conf:1")


def test_later_assignment_wins_within_and_across_files(tmp_path: Path) -> None:
    write(tmp_path, "etc/sysctl.d/50-a.conf", "net.core.somaxconn = 1\nnet.core.somaxconn = 2\n")
    assert effective(tmp_path)["net.core.somaxconn"] == ("2", "etc/sysctl.d/50-a.conf:2")
    write(tmp_path, "etc/sysctl.d/60-b.conf", "net.core.somaxconn = 3\n")
    assert effective(tmp_path)["net.core.somaxconn"] == ("3", "etc/sysctl.d/60-b.conf:1")


def test_only_conf_files_count(tmp_path: Path) -> None:
    write(tmp_path, "etc/sysctl.d/50-a.conf.rpmsave", "net.core.somaxconn = 1\n")
    write(tmp_path, "etc/sysctl.d/README", "net.core.somaxconn = 2\n")
    write(tmp_path, "etc/sysctl.d/50-a.conf", "net.core.somaxconn = 3\n")
    assert order(tmp_path) == ["etc/sysctl.d/50-a.conf"]


def test_symlink_to_dev_null_masks_a_vendor_file(tmp_path: Path) -> None:
    write(tmp_path, "usr/lib/sysctl.d/50-vendor.conf", "net.ipv4.tcp_fin_timeout = 5\n")
    (tmp_path / "etc/sysctl.d").mkdir(parents=True)
    os.symlink("/dev/null", tmp_path / "etc/sysctl.d/50-vendor.conf")
    assert order(tmp_path) == []
    assert any("masked" in n for n in root_unit(tmp_path).notes)


def test_absolute_symlinks_resolve_inside_the_root(tmp_path: Path) -> None:
    write(tmp_path, "etc/sysctl.conf", "net.core.somaxconn = 7\n")
    (tmp_path / "etc/sysctl.d").mkdir(parents=True)
    os.symlink("/etc/sysctl.conf", tmp_path / "etc/sysctl.d/99-sysctl.conf")  # Debian/RHEL ship this link
    (tmp_path / "usr/lib/sysctl.d").mkdir(parents=True)
    os.symlink("usr/lib", tmp_path / "lib")  # merged /usr: /lib -> usr/lib must not read the host's /usr/lib
    write(tmp_path, "usr/lib/sysctl.d/10-x.conf", "net.core.netdev_max_backlog = 1\n")
    assert order(tmp_path) == ["usr/lib/sysctl.d/10-x.conf", "etc/sysctl.conf"]
    assert any("already applied through a sysctl.d symlink" in n for n in root_unit(tmp_path).notes)


def test_the_finding_points_at_the_winning_file_and_judges_its_value(tmp_path: Path) -> None:
    write(tmp_path, "usr/lib/sysctl.d/50-net.conf", "net.ipv4.tcp_tw_recycle = 0\n")
    write(tmp_path, "etc/sysctl.d/60-local.conf", "# local tuning\nnet.ipv4.tcp_tw_recycle = 1\n")
    from tcpaudit.context import ContextOptions

    opts = AuditOptions(context=ContextOptions(clients_behind_nat="yes"))
    (t,) = lint_root(tmp_path, opts, kernel="3.10.0-1160.el7.x86_64")
    (f,) = [f for f in t.findings if f.rule == "TCP001"]
    assert f.severity.value == "critical"
    assert f.location is not None and f.location.file.endswith("etc/sysctl.d/60-local.conf") and f.location.line == 2
    (dup,) = [f for f in t.findings if f.rule == "SYS003"]
    assert dup.location == f.location
    assert [r["file"].removeprefix(str(tmp_path) + "/") for r in dup.evidence["related_locations"]] == [
        "usr/lib/sysctl.d/50-net.conf"
    ]


def test_globs_apply_to_keys_without_an_explicit_assignment(tmp_path: Path) -> None:
    write(
        tmp_path,
        "etc/sysctl.d/50-glob.conf",
        "net.ipv4.tcp_keepalive_*  = 60\n-net.ipv4.tcp_keepalive_probes\nnet.ipv4.tcp_keepalive_intvl = 5\n",
    )
    eff = effective(tmp_path)
    assert eff["net.ipv4.tcp_keepalive_time"] == ("60", "etc/sysctl.d/50-glob.conf:1")
    assert eff["net.ipv4.tcp_keepalive_intvl"] == ("5", "etc/sysctl.d/50-glob.conf:3")  # explicit beats glob
    assert "net.ipv4.tcp_keepalive_probes" not in eff  # excluded with '-key'


def test_rejected_values_keep_the_earlier_setting(tmp_path: Path) -> None:
    from tcpaudit.audit import kernel_db, parse_release_or_none

    write(tmp_path, "etc/sysctl.d/50-a.conf", "net.ipv4.tcp_keepalive_time = 600\n")
    write(tmp_path, "etc/sysctl.d/60-b.conf", 'net.ipv4.tcp_keepalive_time = "300"\n')
    write(tmp_path, "etc/sysctl.d/70-c.conf", "net.ipv4.tcp_keepalive_intvl = 30 # applies: the kernel reads 30\n")
    u = root_unit(tmp_path)
    eff = effective_settings(u.assignments, kernel_db(), parse_release_or_none("6.1.0"))
    assert eff["net.ipv4.tcp_keepalive_time"][0] == "600"
    assert eff["net.ipv4.tcp_keepalive_intvl"][0] == "30"


def test_one_port_sets_only_the_low_end_of_the_range(tmp_path: Path) -> None:
    """The kernel takes a single value for ip_local_port_range as the new low end and keeps the high end."""
    from tcpaudit.kernel.db import load_kernel_db
    from tcpaudit.kernel.release import parse_release

    kdb, rel = load_kernel_db(), parse_release("5.15.0")
    write(tmp_path, "etc/sysctl.d/10-a.conf", "net.ipv4.ip_local_port_range = 20000 50000\n")
    write(tmp_path, "etc/sysctl.d/20-b.conf", "net.ipv4.ip_local_port_range = 30000\n")
    u = root_unit(tmp_path)
    assert effective_settings(u.assignments, kdb, rel)["net.ipv4.ip_local_port_range"][0] == "30000 50000"
    write(tmp_path, "etc/sysctl.d/10-a.conf", "# nothing before: the default high end (60999) stays\n")
    u = root_unit(tmp_path)
    assert effective_settings(u.assignments, kdb, rel)["net.ipv4.ip_local_port_range"][0] == "30000 60999"
    write(tmp_path, "etc/sysctl.d/20-b.conf", "net.ipv4.ip_local_port_range = 61000\n")  # above the high end: EINVAL
    u = root_unit(tmp_path)
    assert "net.ipv4.ip_local_port_range" not in effective_settings(u.assignments, kdb, rel)


def test_an_int_outside_the_c_int_range_keeps_the_earlier_setting_from_4_1_on(tmp_path: Path) -> None:
    """do_proc_dointvec_conv() refuses it with EINVAL since 230633d109e3 (4.1); before, it was truncated."""
    from tcpaudit.audit import kernel_db, parse_release_or_none

    write(tmp_path, "etc/sysctl.d/50-a.conf", "net.core.somaxconn = 4096\nnet.ipv4.tcp_keepalive_time = 600\n")
    write(
        tmp_path,
        "etc/sysctl.d/60-b.conf",
        "net.core.somaxconn = 99999999999\nnet.ipv4.tcp_keepalive_time = 99999999999\n",
    )
    u = root_unit(tmp_path)
    eff = effective_settings(u.assignments, kernel_db(), parse_release_or_none("5.15.0"))
    assert eff["net.core.somaxconn"][0] == "4096"
    # proc_dointvec_jiffies: its limit (INT_MAX / HZ) depends on the kernel's HZ, so the value is not judged
    assert eff["net.ipv4.tcp_keepalive_time"][0] == "99999999999"
    old = effective_settings(u.assignments, kernel_db(), parse_release_or_none("3.10.0"))
    assert old["net.core.somaxconn"][0] == "99999999999"


def test_a_root_with_only_masked_files_sets_nothing_but_is_not_an_error(tmp_path: Path) -> None:
    import pytest

    from tcpaudit.lint import LintInputError

    with pytest.raises(LintInputError, match="no sysctl files under this root"):
        root_unit(tmp_path)
    (tmp_path / "etc/sysctl.d").mkdir(parents=True)
    os.symlink("/dev/null", tmp_path / "etc/sysctl.d/50-x.conf")
    u = root_unit(tmp_path)
    assert not u.assignments and "no sysctl.d or sysctl.conf files under this root" in u.notes[0]
