"""The sysctl key index (kernel_db/keys): regenerated from its committed sources, and what it answers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tcpaudit.kernel.keys import key_status
from tcpaudit.kernel.release import parse_release

ROOT = Path(__file__).resolve().parents[1]


def test_committed_index_matches_the_script_output():
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts/gen_key_index.py"), "--check"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr


def test_misspelt_and_invented_keys_are_absent_with_the_nearest_real_key():
    rel = parse_release("6.8.0")
    assert key_status("net.core.rmem_defualt", rel).nearest == "net.core.rmem_default"
    assert key_status("net.ipv4_fastopen", rel).nearest == "net.ipv4.tcp_fastopen"
    assert key_status("net.ipv4.tcp_keepalive_timeout", rel).nearest == "net.ipv4.tcp_keepalive_time"
    st = key_status("net.core.foobar", rel)
    assert st.status == "absent" and st.nearest is None


def test_what_the_index_cannot_vouch_for_is_unknown():
    rel = parse_release("6.8.0")
    assert key_status("net.bridge.bridge-nf-call-iptables", rel).status == "unknown"
    assert key_status("kernel.does_not_exist", rel).status == "unknown"
    assert key_status("net.core.foobar", None).status == "unknown"
    assert key_status("net.core.foobar", parse_release("7.9.0")).status == "unknown"
    assert key_status("net.ipv4.conf.eth7.rp_filter", rel).status == "exists"
