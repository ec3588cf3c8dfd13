"""SYS008: a pod sets a sysctl value the kernel refuses, so its sandbox cannot be created and the pod never starts."""

from tcpaudit.lint.model import Assignment, ConfigFacts
from tcpaudit.lint.values import check_value, presence
from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta

# How tcpaudit.lint.structured records spec.securityContext.sysctls of a pod (or a workload's pod template).
POD_SYSCTLS = "kubernetes securityContext.sysctls"
UNPRIV = "net.ipv4.ip_unprivileged_port_start"
RANGE = "net.ipv4.ip_local_port_range"


class PodSysctlValueRejected(Rule):
    meta = RuleMeta(
        id="SYS008",
        title="Pod sets a sysctl value the kernel refuses: the pod sandbox cannot be created and the pod never starts",
        severity=Severity.high,
        applies_to=["config"],
        keys=[UNPRIV, RANGE, "net.ipv4.ping_group_range"],
        summary=(
            "A pod's spec.securityContext.sysctls are written by the container runtime into the pod's namespaces "
            "when it creates the pod sandbox. A value the kernel refuses with EINVAL (a boolean or u8 above 255, a "
            "group id outside 0..4294967294 in ping_group_range, ip_unprivileged_port_start above the start of "
            "the pod's ephemeral port range, a port range whose ends are reversed) makes that write fail, the "
            "sandbox is not created, and the pod stays in ContainerCreating forever: none of its containers start."
        ),
        mechanism=[
            "The kubelet admits the pod (the API and the kubelet check names, not values) and asks the CRI runtime "
            "for a sandbox with the pod's sysctls; runc writes each one (libcontainer standard_init_linux.go: "
            "`for key, value := range l.config.Config.Sysctl { if err := writeSystemProperty(key, value); err != "
            "nil { return err } }`) and returns the first error.",
            "The kernel validates the value: proc_dou8vec_minmax keys (tcp_syncookies, tcp_keepalive_probes, "
            "tcp_slow_start_after_idle since 5.13) refuse anything outside 0..255, kernel.shm_rmid_forced anything "
            "but 0 or 1, ping_group_range a group id that is not valid (4294967295, negative, not a number), "
            "ip_local_reserved_ports a list that is not comma-separated ports.",
            "ip_unprivileged_port_start and ip_local_port_range are checked against each other "
            "(net/ipv4/sysctl_net_ipv4.c): a port range whose low end is below ip_unprivileged_port_start, or an "
            "ip_unprivileged_port_start above the range's low end, is refused. runc writes the map in Go's random "
            "order, but whichever of the two comes second fails, so the conflict fails every time.",
            "The sandbox creation fails with an event like 'FailedCreatePodSandBox ... write sysctl key "
            "net.ipv4.ip_unprivileged_port_start: invalid argument'; the kubelet retries it with back-off and the "
            "pod never becomes Ready. Rolling updates stall on the first new pod.",
        ],
        when_it_matters=(
            "Always, on every node: the values are wrong for the kernel, not for a node's configuration. Only the "
            "size of the u8 bounds depends on the node kernel (before 5.13 those keys were plain ints)."
        ),
        remediation=(
            "Write a value the kernel accepts: booleans 0 or 1, ping_group_range as two group ids (e.g. "
            "'0 2147483647'), ip_unprivileged_port_start at or below the low end of the pod's ip_local_port_range "
            "(32768 by default), and ip_local_reserved_ports as a comma-separated list."
        ),
        references=[
            Reference(
                title="runc libcontainer/standard_init_linux.go: pod sysctls written at container init, first error "
                "returned",
                url="https://github.com/opencontainers/runc/blob/main/libcontainer/standard_init_linux.go",
            ),
            Reference(
                title="net/ipv4/sysctl_net_ipv4.c: ipv4_local_port_range(), ipv4_privileged_ports(), "
                "ipv4_ping_group_range() (stored mainline copy 4a7126a25b4d)",
                url="https://github.com/torvalds/linux/blob/4a7126a25b4dfd07d61c699f724118275acc0c25/net/ipv4/sysctl_net_ipv4.c",
            ),
            Reference(
                title="Kubernetes: Using sysctls in a Kubernetes Cluster",
                url="https://kubernetes.io/docs/tasks/administer-cluster/sysctl-cluster/",
            ),
        ],
    )

    def check(self, f: Facts):
        if not isinstance(f, ConfigFacts):
            return self.na("needs the parse results of a linted configuration")
        first: dict[str, Assignment] = {}
        for a in f.assignments:
            if a.syntax == POD_SYSCTLS and a.value is not None and not a.is_glob and a.key and not a.templated:
                first.setdefault(a.key, a)
        if not first:
            return self.na("no sysctls with a literal value set through a Kubernetes pod's securityContext")
        db = f.kdb.kubernetes if f.kdb is not None else None
        out = []
        for key, a in first.items():
            if presence(f.kdb, f.release, key) is False:
                continue  # SYS001 says the key is absent (and that the pod fails to start)
            reason = None
            vc = check_value(a, f.kdb, f.release)
            if vc.status == "invalid":
                reason = vc.reason
            accepts = db.accepts.get(key) if db is not None else None
            if reason is None and accepts is not None and accepts.applies_to(f.release):
                reason = accepts.rejects(a.value or "")
            if reason is not None:
                out.append(self._report(f, a, reason, {"key": key, "value": a.value, "reason": reason}))
        conflict = None if any(UNPRIV in x.keys for x in out) else self._ports(f, first)
        if conflict is not None:
            out.append(conflict)
        return out or None

    def _ports(self, f: ConfigFacts, first: dict[str, Assignment]):
        """ip_unprivileged_port_start above the low end of the pod's ephemeral range: one of the writes fails."""
        if UNPRIV not in first:
            return None
        a = first[UNPRIV]
        unpriv = _first_int(a.value)
        rng = f.value(RANGE).ints  # the pod's own range if it sets a valid one, else the kernel default
        if unpriv is None or not rng or unpriv <= rng[0]:
            return None
        set_range = RANGE in first
        where = f"the pod's ip_local_port_range {first[RANGE].value!r}" if set_range else "the default range"
        reason = (
            f"ip_unprivileged_port_start={unpriv} is above the low end {rng[0]} of {where} "
            f"({rng[0]}-{rng[-1]}); the kernel refuses whichever of the two is written second"
        )
        ev = {"key": UNPRIV, "value": a.value, "ip_local_port_range": " ".join(map(str, rng)), "reason": reason}
        keys = [UNPRIV, RANGE] if set_range else [UNPRIV]
        return self._report(f, a, reason, ev, keys=keys, fix={UNPRIV: str(rng[0])})

    def _report(self, f: Facts, a: Assignment, reason: str, ev: dict, keys=None, fix=None):
        ev = {**ev, "written_as": a.syntax}
        return self.finding(
            f,
            keys=keys or [a.key],
            location=a.location,
            evidence=ev,
            fix=fix or {},
            explanation=(
                f"{a.key} = {a.value!r} in the pod's securityContext.sysctls is refused by the kernel (EINVAL: "
                f"{reason}). The container runtime writes the pod's sysctls when it creates the pod sandbox and "
                "stops at the first error, so the sandbox is never created (FailedCreatePodSandBox), the kubelet "
                "retries with back-off, and the pod stays in ContainerCreating: none of its containers start."
            ),
        )


def _first_int(value: str | None) -> int | None:
    fields = (value or "").split()
    if not fields:
        return None
    try:
        return int(fields[0])
    except ValueError:
        return None
