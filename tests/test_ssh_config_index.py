"""ConfigIndex (the ssh config lookup a fleet sweep uses) gives exactly paramiko's SSHConfig.lookup results,
on configs with plain Host names, patterns, negations, several names per block, Match blocks and repeats."""

from __future__ import annotations

import paramiko
import pytest

from tcpaudit.collect.ssh import ConfigIndex

CONFIGS = [
    "",
    "Host web1\n  HostName 10.0.0.1\n  Port 2222\nHost web2 web3\n  User deploy\nHost *\n  User root\n",
    # a later plain block for the same name still contributes what the earlier one did not set
    "Host a\n  Port 1\nHost b\n  Port 2\nHost a\n  User u\n  IdentityFile ~/.ssh/a\n"
    "Host a b\n  IdentityFile ~/.ssh/ab\n",
    # patterns, negation and character classes interleaved with plain names (file order matters)
    "Host db?\n  Port 5\nHost db1\n  Port 6\n  User x\nHost !db2 db*\n  User neg\nHost [ab]x\n  Port 7\n"
    "Host *.example.com\n  ProxyJump bastion\nHost bastion\n  HostName 192.0.2.1\n",
    # Match blocks always apply by their own rules
    "Host m1\n  Port 11\nMatch host m2\n  Port 12\nMatch all\n  User everyone\nHost m2\n  User late\n",
    "Host web1\n  IdentityFile /k/1\nHost *\n  IdentityFile /k/2\nHost web1\n  IdentityFile /k/3\n",
    # CanonicalizeHostname: every lookup uses the whole file
    "Host short\n  CanonicalizeHostname no\n  Port 1\nHost short.example.com\n  Port 2\n",
]
NAMES = [
    "web1",
    "web2",
    "web3",
    "web4",
    "a",
    "b",
    "c",
    "db1",
    "db2",
    "db3",
    "ax",
    "bx",
    "cx",
    "m1",
    "m2",
    "m3",
    "x.example.com",
    "bastion",
    "short",
    "short.example.com",
    "WEB1",
]


@pytest.mark.parametrize("text", CONFIGS)
def test_index_lookup_is_paramiko_lookup(text):
    config = paramiko.SSHConfig.from_text(text)
    index = ConfigIndex(config)
    for name in NAMES:
        assert index.lookup(name) == config.lookup(name), name


def test_thousand_plain_blocks_consult_only_their_own():
    text = "".join(f"Host h{i}\n  Port {1000 + i}\n" for i in range(1000)) + "Host *\n  User all\n"
    index = ConfigIndex(paramiko.SSHConfig.from_text(text))
    assert index.lookup("h777") == {"hostname": "h777", "port": "1777", "user": "all"}
    assert index._always == [0, 1001]  # paramiko's implicit first block and `Host *`
    assert index._by_name["h777"] == [778]
