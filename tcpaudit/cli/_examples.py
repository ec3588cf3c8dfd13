"""Examples shown at the end of every command's --help (set once in _app, so every command has some).

Each line fits an 80-column terminal; the block is printed as written (click's `\\b`: no rewrapping).
"""

from __future__ import annotations

EXAMPLES: dict[str, list[str]] = {
    "host": [
        "tcpaudit host                                # this machine",
        "tcpaudit host --nat-idle-timeout 350 -v       # behind an AWS NAT gateway",
        "tcpaudit host --profile azure-lb --sample 10  # counters sampled 10 s apart",
        "tcpaudit host admin@web1 --sudo -f json:web1.json",
        "tcpaudit host --all-netns                    # every network namespace",
    ],
    "snapshot": [
        "tcpaudit snapshot -o web1.json",
        "tcpaudit snapshot -o - --sample 5 | ssh bastion 'cat > web1.json'",
    ],
    "audit": [
        "tcpaudit audit web1.json web2.json --profile aws-nat-gateway",
        "tcpaudit audit dumps/ -f markdown:summary.md   # an Ansible -t tree",
        "ssh web1 sh < collector.sh | tcpaudit audit -",
    ],
    "schema": ["tcpaudit schema > snapshot.schema.json"],
    "rules": ["tcpaudit rules", "tcpaudit rules -f json | jq '.[].id'"],
    "explain": ["tcpaudit explain NAT001", "tcpaudit explain KI-CT-CHALLENGE-ACK-RST"],
    "kernel": [
        "tcpaudit kernel                      # this machine (/proc/version too)",
        "tcpaudit kernel 5.4.0-137-generic -v",
        'tcpaudit kernel 6.1.0-18-amd64 --version-string "$(ssh db1 uname -v)"',
        "tcpaudit kernel 6.1.76 -f json",
    ],
    "profiles": ["tcpaudit profiles", "tcpaudit host --profile aws-nat-gateway"],
    "remediate": [
        "tcpaudit remediate web1.json -o 90-tcpaudit.conf --profile azure-lb",
        "tcpaudit remediate web1.json -o -            # review on stdout",
    ],
    "fleet": [
        "tcpaudit fleet web1 web2 admin@db1 --nat-idle-timeout 350",
        "tcpaudit fleet -I hosts.txt -j 16 -f json:fleet.json -f table",
        "tcpaudit fleet --ssh-config-hosts --detail",
    ],
    "collector-script": [
        "tcpaudit collector-script > collector.sh",
        'ansible all -m script -a "$(tcpaudit collector-script path)" -t dumps/',
    ],
    "lint": [
        "tcpaudit lint /etc/sysctl.d/ --kernel 6.1.76",
        "tcpaudit lint --root rootfs/ --fail-on medium -f sarif:lint.sarif",
        "tcpaudit lint k8s/*.yaml --k8s-version 1.29",
    ],
    "baseline": [
        "tcpaudit baseline /etc/sysctl.d/ -o .tcpaudit-baseline.json",
        "tcpaudit lint /etc/sysctl.d/ --baseline .tcpaudit-baseline.json",
    ],
    "agent": [
        'tcpaudit agent --interval 10m -f prometheus:"$TEXTFILE_DIR/tcpaudit.prom"',
        "tcpaudit agent --runs 1 -f json:/tmp/tcpaudit.json",
    ],
    "completion": [
        "source <(tcpaudit completion bash)",
        'tcpaudit completion zsh > "${fpath[1]}/_tcpaudit"',
        "tcpaudit completion fish > ~/.config/fish/completions/tcpaudit.fish",
    ],
}


def epilog(command: str) -> str | None:
    lines = EXAMPLES.get(command)
    if not lines:
        return None
    return "Examples:\n\n\b\n" + "\n".join(lines)
