"""The shipped kernel knowledge base: validation, queries, summaries (real data, no mocks)."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

from tcpaudit.kernel.db import KernelDB, KernelDBError, load_kernel_db
from tcpaudit.kernel.release import KernelReleaseError, parse_release
from tcpaudit.kernel.summary import kernel_summary, render_kernel_summary_table

REQUIRED_SYSCTLS = [
    "net.ipv4.tcp_tw_recycle",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.tcp_tw_reuse_delay",
    "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_rfc1337",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_max_tw_buckets",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_retries2",
    "net.ipv4.tcp_syn_retries",
    "net.ipv4.tcp_synack_retries",
    "net.ipv4.tcp_max_orphans",
    "net.ipv4.tcp_orphan_retries",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_sack",
    "net.ipv4.tcp_low_latency",
    "net.core.somaxconn",
    "net.netfilter.nf_conntrack_max",
    "net.nf_conntrack_max",
    "net.netfilter.nf_conntrack_count",
    "net.netfilter.nf_conntrack_buckets",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_time_wait",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
    "net.netfilter.nf_conntrack_tcp_timeout_fin_wait",
    "net.netfilter.nf_conntrack_tcp_be_liberal",
    "net.netfilter.nf_conntrack_tcp_loose",
    "net.netfilter.nf_conntrack_tcp_ignore_invalid_rst",
    "net.netfilter.nf_conntrack_helper",
    "net.ipv4.ip_forward",
]

CHALLENGE = "KI-CT-CHALLENGE-ACK-RST"
NO_RST_KNOB = "KI-CT-NO-IGNORE-INVALID-RST"


@pytest.fixture(scope="module")
def db() -> KernelDB:
    return load_kernel_db()


def _copy_db(tmp_path: Path) -> Path:
    src = resources.files("tcpaudit.kernel_db")
    for name in ("sysctls.toml", "issues.toml"):
        (tmp_path / name).write_bytes(src.joinpath(name).read_bytes())
    return tmp_path


# -- validation ---------------------------------------------------------------


def test_shipped_db_validates_and_covers_required_sysctls(db):
    assert set(REQUIRED_SYSCTLS) <= set(db.sysctls)
    assert len(db.issues) >= 8
    assert load_kernel_db() is db  # cached


def test_every_fact_has_a_source_and_confidence(db):
    for fact in db.sysctls.values():
        assert fact.source and fact.confidence in {"verified", "high", "low"}
        for entry in [*fact.exists, *fact.defaults, *fact.per_netns]:
            assert entry.source is not None
            assert entry.confidence in {"verified", "high", "low"}
    for issue in db.issues.values():
        assert issue.source is not None
        for backport in issue.backports:
            assert backport.source is not None


def test_commit_hashes_are_well_formed(db):
    hex_re = re.compile(r"^[0-9a-f]{12,40}$")
    commits = [f.source.commit for f in db.sysctls.values() if f.source.commit]
    commits += [i.fix.commit for i in db.issues.values() if i.fix and i.fix.commit]
    assert commits and all(hex_re.match(c) for c in commits)


def test_copy_loads_from_path(tmp_path):
    copy = load_kernel_db(_copy_db(tmp_path))
    assert set(copy.sysctls) == set(load_kernel_db().sysctls)


def test_removed_source_fails_validation(tmp_path):
    root = _copy_db(tmp_path)
    text = (root / "sysctls.toml").read_text()
    block_start = text.index('[["net.core.somaxconn".defaults]]')
    block_end = text.index("\n\n", block_start)
    block = text[block_start:block_end]
    stripped = "\n".join(line for line in block.splitlines() if not line.startswith("source."))
    (root / "sysctls.toml").write_text(text[:block_start] + stripped + text[block_end:])
    with pytest.raises(KernelDBError) as info:
        load_kernel_db(root)
    message = str(info.value)
    assert "sysctls.toml" in message
    assert "net.core.somaxconn" in message
    assert "source" in message


def test_top_level_source_removed_fails(tmp_path):
    root = _copy_db(tmp_path)
    text = (root / "issues.toml").read_text()
    start = text.index('["KI-CORE-SOMAXCONN-128"]')
    end = text.index("\n\n", start)
    block = "\n".join(line for line in text[start:end].splitlines() if not line.startswith("source."))
    (root / "issues.toml").write_text(text[:start] + block + text[end:])
    with pytest.raises(KernelDBError, match=r"issues.toml: entry 'KI-CORE-SOMAXCONN-128'.*source"):
        load_kernel_db(root)


def test_source_without_locator_fails(tmp_path):
    root = _copy_db(tmp_path)
    path = root / "sysctls.toml"
    path.write_text(
        path.read_text() + '\n["net.ipv4.tcp_bogus"]\ntype = "int"\nsummary = "x"\n'
        'confidence = "low"\nsource.note = "trust me"\n'
        '[["net.ipv4.tcp_bogus".exists]]\nsince = "5.4"\nconfidence = "low"\n'
        'source.url = "https://example.org/"\n'
    )
    with pytest.raises(KernelDBError, match="net.ipv4.tcp_bogus.*commit, a file with a tag, or a url"):
        load_kernel_db(root)


def test_bad_version_bound_fails(tmp_path):
    root = _copy_db(tmp_path)
    path = root / "issues.toml"
    path.write_text(path.read_text().replace('affects.until = "5.4"', 'affects.until = "five"'))
    with pytest.raises(KernelDBError, match="KI-CORE-SOMAXCONN-128"):
        load_kernel_db(root)


def test_invalid_toml_and_missing_dir(tmp_path):
    with pytest.raises(KernelDBError, match="sysctls.toml"):
        load_kernel_db(tmp_path / "nowhere")
    root = _copy_db(tmp_path)
    (root / "issues.toml").write_text("[[[broken")
    with pytest.raises(KernelDBError, match="issues.toml: invalid TOML"):
        load_kernel_db(root)


# -- sysctl queries -------------------------------------------------------------


def test_tw_recycle_presence(db):
    summary_49 = kernel_summary("4.9.0", db)
    summary_412 = kernel_summary("4.12.0", db)
    assert summary_49["sysctls"]["net.ipv4.tcp_tw_recycle"]["present"] is True
    assert summary_412["sysctls"]["net.ipv4.tcp_tw_recycle"]["present"] is False
    source = summary_412["sysctls"]["net.ipv4.tcp_tw_recycle"]["source"]
    assert source["commit"] == "4396e46187ca5070219b81773c4e65088dac50cc"


def test_somaxconn_default_changes_in_5_4(db):
    fact = db.sysctl("net.core.somaxconn")
    assert fact.default_in(parse_release("5.3")) == "128"
    assert fact.default_in(parse_release("5.4")) == "4096"
    assert fact.default_in(parse_release("5.4.0-137-generic")) == "4096"


def test_tw_reuse_default_and_netns(db):
    fact = db.sysctl("net/ipv4/tcp_tw_reuse")
    assert fact is db.sysctl("net.ipv4.tcp_tw_reuse")
    assert fact.default_in(parse_release("4.17")) == "0"
    assert fact.default_in(parse_release("4.18")) == "2"
    assert fact.per_netns_in(parse_release("4.10")) is False
    assert fact.per_netns_in(parse_release("4.11")) is True
    assert set(fact.meaning) == {"0", "1", "2"}


def test_tw_reuse_delay_only_since_6_14(db):
    fact = db.sysctl("/proc/sys/net/ipv4/tcp_tw_reuse_delay")
    assert fact.present_in(parse_release("6.13")) is False
    assert fact.present_in(parse_release("6.14.0")) is True
    assert fact.default_in(parse_release("6.14")) == "1000"
    assert fact.default_in(parse_release("6.13")) is None


def test_ignore_invalid_rst_presence(db):
    fact = db.sysctl("net.netfilter.nf_conntrack_tcp_ignore_invalid_rst")
    assert fact.present_in(parse_release("5.13")) is False
    assert fact.present_in(parse_release("5.14")) is True


def test_unknown_prehistory_is_none(db):
    fact = db.sysctl("net.ipv4.tcp_tw_recycle")
    assert fact.present_in(parse_release("2.2")) is None


def test_lookup_unknown_and_alias(db):
    assert db.sysctl("net.ipv4.no_such_thing") is None
    assert db.sysctl("net/nf_conntrack_max").name == "net.nf_conntrack_max"


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [
        ("net.ipv4.ip_local_port_range", "32768 60999", True),
        ("net.ipv4.ip_local_port_range", "32768\t60999", True),
        ("net.ipv4.ip_local_port_range", "60999 32768", False),
        ("net.ipv4.ip_local_port_range", "0 60999", False),
        ("net.ipv4.ip_local_port_range", "1024 65536", False),
        ("net.ipv4.ip_local_port_range", "1024", True),  # one field sets the low end only (checked on 6.18)
        ("net.ipv4.ip_local_port_range", "1024 2048 4096", False),
        ("net.ipv4.ip_local_port_range", "0", False),
        ("net.ipv4.ip_local_reserved_ports", "", True),
        ("net.ipv4.ip_local_reserved_ports", "8080,9000-9100", True),
        ("net.ipv4.ip_local_reserved_ports", "9100-9000", False),
        ("net.ipv4.ip_local_reserved_ports", "8080,,1", False),
        ("net.ipv4.ip_local_reserved_ports", "70000", False),
        ("net.ipv4.tcp_tw_reuse", "2", True),
        ("net.ipv4.tcp_tw_reuse", "3", False),
        ("net.ipv4.tcp_tw_reuse", "yes", False),
        ("net.ipv4.tcp_syn_retries", "0", False),
        ("net.ipv4.tcp_syn_retries", "127", True),
        ("net.ipv4.tcp_syn_retries", "128", False),
        ("net.ipv4.tcp_tw_reuse_delay", "0", False),
        ("net.ipv4.tcp_tw_reuse_delay", "60000", True),
        ("net.core.somaxconn", "4096", True),
        ("net.core.somaxconn", "4096\n1", False),
        ("net.netfilter.nf_conntrack_tcp_be_liberal", "1", True),
        ("net.netfilter.nf_conntrack_tcp_be_liberal", "2", False),
    ],
)
def test_validate_value(db, name, value, ok):
    reason = db.sysctl(name).validate_value(value)
    if ok:
        assert reason is None
    else:
        assert reason and "\n" not in reason and name in reason


# -- issues ---------------------------------------------------------------------


def _status(db, issue_id, release, sysctls=None):
    return db.issues[issue_id].status_for(parse_release(release), sysctls)


def test_challenge_ack_upstream_table(db):
    # Introduced in 5.18 (c7aab4f17021), fixed in 6.2 (c410cb974f2b).
    assert _status(db, CHALLENGE, "5.18.0").applies is True
    assert _status(db, CHALLENGE, "6.1.8").applies is True
    fixed_stable = _status(db, CHALLENGE, "6.1.9")
    assert fixed_stable.applies is False and fixed_stable.fixed_in == "6.1.9"
    fixed = _status(db, CHALLENGE, "6.2.0")
    assert fixed.applies is False and fixed.fixed_in == "v6.2"
    # Plain upstream 5.14.21 predates the regression (no c7aab4f17021 in 5.14.y).
    assert _status(db, CHALLENGE, "5.14.21").applies is False
    # 5.17.6 got the regression through stable.
    assert _status(db, CHALLENGE, "5.17.5").applies is False
    assert _status(db, CHALLENGE, "5.17.6").applies is True


def test_challenge_ack_field_report_data_points(db):
    suse = _status(db, CHALLENGE, "5.14.21-150400.24.21-default")
    assert suse.applies is True and suse.confidence == "observed"
    assert suse.source.url == "https://github.com/istio/istio/issues/43301"
    ubuntu = _status(db, CHALLENGE, "5.4.0-137-generic")
    assert ubuntu.applies is False and ubuntu.confidence == "observed"
    # Other builds of the same lines: unknown, said so with a confidence level.
    later_suse = _status(db, CHALLENGE, "5.14.21-150400.24.100-default")
    assert later_suse.applies is None and later_suse.confidence == "medium"
    rhel = _status(db, CHALLENGE, "4.18.0-513.5.1.el8_9.x86_64")
    assert rhel.applies is None and rhel.confidence == "low"
    # A distribution kernel based on a release that already has the mainline fix.
    newer = _status(db, CHALLENGE, "6.8.0-1021-aws")
    assert newer.applies is False and newer.confidence == "high"
    in_range = _status(db, CHALLENGE, "6.1.0-18-amd64")
    assert in_range.applies is None and "backports" in in_range.reason


def test_rebased_behaviour_changes(db):
    # Behaviour changes without a fix commit are asserted for rebased kernels too.
    assert _status(db, "KI-TCP-TW-REUSE-LOOPBACK-ONLY", "5.4.0-137-generic").applies is True
    old = _status(db, "KI-TCP-TW-REUSE-LOOPBACK-ONLY", "3.10.0-327.el7.x86_64")
    assert old.applies is False and old.confidence == "medium"
    assert _status(db, "KI-TCP-FIN-TIMEOUT-NOT-TIMEWAIT", "2.6.32-754.el6.x86_64").applies is True


def test_ignore_invalid_rst_data_points(db):
    assert _status(db, NO_RST_KNOB, "5.4.0-137-generic").applies is True
    assert _status(db, NO_RST_KNOB, "5.14.21-150400.24.21-default").applies is False
    assert _status(db, NO_RST_KNOB, "5.10.0").applies is True
    assert _status(db, NO_RST_KNOB, "5.14.0").applies is False


def test_evidence_beats_inference(db):
    sysctls = {"net.netfilter.nf_conntrack_tcp_ignore_invalid_rst": "0"}
    status = _status(db, NO_RST_KNOB, "5.4.0", sysctls)
    assert status.applies is False
    assert status.confidence == "evidence"
    assert "backport" in status.reason
    assert "disagreed" in status.reason
    # "/"-form keys are accepted too.
    assert (
        _status(db, NO_RST_KNOB, "5.4.0", {"net/netfilter/nf_conntrack_tcp_ignore_invalid_rst": "1"}).applies is False
    )
    # Evidence of absence on a version that should have it.
    absent = _status(db, NO_RST_KNOB, "6.1.0", {"net.ipv4.tcp_sack": "1"})
    assert absent.applies is True and "disagreed" in absent.reason


def test_tw_recycle_evidence_uses_value(db):
    issue = "KI-TCP-TW-RECYCLE-NAT"
    assert _status(db, issue, "3.10.0-1160.83.1.el7.x86_64").applies is None
    on = _status(db, issue, "3.10.0-1160.83.1.el7.x86_64", {"net.ipv4.tcp_tw_recycle": "1"})
    off = _status(db, issue, "3.10.0-1160.83.1.el7.x86_64", {"net.ipv4.tcp_tw_recycle": "0"})
    gone = _status(db, issue, "5.4.0", {})
    assert on.applies is True and off.applies is False and gone.applies is False
    assert _status(db, issue, "4.9").applies is True
    assert _status(db, issue, "4.12").applies is False


def test_issues_for_lists_every_issue_sorted(db):
    statuses = db.issues_for(parse_release("5.15.0-1057-azure"))
    assert [s.id for s in statuses] == sorted(db.issues)


# -- summary --------------------------------------------------------------------


def test_kernel_summary_shape(db):
    summary = kernel_summary("5.4.0-137-generic", db)
    assert {"release", "version", "sysctls", "issues"} <= set(summary)
    assert summary["release"] == "5.4.0-137-generic"
    assert summary["version"] == "5.4.0"
    for info in summary["sysctls"].values():
        assert {"present", "default", "per_netns", "source"} <= set(info)
    for issue in summary["issues"]:
        assert {"id", "title", "applies", "fixed_in", "source"} <= set(issue)
    challenge = next(i for i in summary["issues"] if i["id"] == CHALLENGE)
    assert challenge["applies"] is False


def test_kernel_summary_uses_packaged_db_by_default():
    assert kernel_summary("6.2.0-rc7")["version"] == "6.2.0-rc7"


def test_kernel_summary_bad_release():
    with pytest.raises(KernelReleaseError):
        kernel_summary("linux")


def test_render_table(db, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # the table wraps to the terminal: wide enough for whole cells here
    text = render_kernel_summary_table(kernel_summary("5.14.21-150400.24.21-default", db))
    assert "net.ipv4.tcp_tw_recycle" in text
    assert CHALLENGE in text
    assert "5.14.21" in text


def test_db_package_data_is_shipped():
    names = {entry.name for entry in resources.files("tcpaudit.kernel_db").iterdir()}
    assert {"sysctls.toml", "issues.toml"} <= names
