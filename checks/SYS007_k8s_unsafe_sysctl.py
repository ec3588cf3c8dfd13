"""SYS007: a pod sets a sysctl outside the kubelet's default safe set, so the pod does not start."""

from tcpaudit.kernel.kubernetes import KubeletSafeSysctls, parse_k8s_version
from tcpaudit.lint.model import Assignment, ConfigFacts
from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta

# How tcpaudit.lint.structured records spec.securityContext.sysctls of a pod (or a workload's pod template).
POD_SYSCTLS = "kubernetes securityContext.sysctls"


class KubeletUnsafeSysctl(Rule):
    meta = RuleMeta(
        id="SYS007",
        title="Pod sets a sysctl the kubelet does not allow by default",
        severity=Severity.medium,
        applies_to=["config"],
        summary=(
            "A Kubernetes pod (or a workload's pod template) sets a sysctl in spec.securityContext.sysctls that "
            "is not in the kubelet's default safe set for the targeted Kubernetes release, so kubelets that do "
            "not explicitly allow it refuse to start the pod, and none of its sysctls ever apply."
        ),
        mechanism=[
            "The kubelet admits a pod only when every sysctl in spec.securityContext.sysctls is in its safe set "
            "or matches its --allowed-unsafe-sysctls (KubeletConfiguration allowedUnsafeSysctls); the API "
            "itself makes no distinction between safe and unsafe sysctls.",
            "Kubernetes documents the result: pods with disabled unsafe sysctls will be scheduled, but will "
            "fail to launch (reason SysctlForbidden). Namespaces that enforce the Pod Security Standards "
            "baseline or restricted level reject such a pod at admission already.",
            "The safe set grows with releases (ping_group_range 1.18, ip_unprivileged_port_start 1.22, "
            "ip_local_reserved_ports 1.27, the tcp_keepalive_* trio and tcp_fin_timeout 1.29, tcp_rmem/wmem 1.32) "
            "and some entries count only on kernels where the sysctl is per network namespace, so a manifest "
            "that starts on a new cluster fails on an older kubelet or an old node kernel.",
            "Only sysctls the kubelet knows to be namespaced (kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*, "
            "net.*; pkg/kubelet/sysctl/namespace.go) can be allowed at all; any other (vm.*, fs.file-max, "
            "kernel.pid_max) is refused on every node. A pod with hostNetwork: true (hostIPC: true) has every net.* "
            "(IPC) sysctl refused, safe or allowed, because it would change the node itself.",
            "The pod is rejected as a whole: the keepalive, port-range or backlog setting it carries never "
            "reaches the kernel, and the workload does not run on any node whose kubelet does not allow it.",
        ],
        when_it_matters=(
            "Whenever the manifest is deployed to nodes whose kubelet does not allow the sysctl. Distributions "
            "and managed services can allow more per node pool (OpenShift through the kubelet settings of a "
            "PerformanceProfile, GKE through allowedUnsafeSysctls in the node pool's kubelet config); a pod that "
            "relies on that runs only on those nodes. Say --k8s-version X.Y (or [context] kubernetes_version) for "
            "the release you run."
        ),
        remediation=(
            "Either allow the sysctl on the nodes meant for this pod (kubelet --allowed-unsafe-sysctls, or "
            "allowedUnsafeSysctls in the KubeletConfiguration or the distribution's node configuration) and keep "
            "the pod on them with a taint and toleration or a node selector; or remove it from the pod, and set "
            "it where the cluster offers that (the CNI `tuning` plugin sets sysctls in the pod's network "
            "namespace). A per-network-namespace sysctl set on the node itself does not reach the pod."
        ),
        references=[
            Reference(
                title="Kubernetes: Using sysctls in a Kubernetes Cluster (safe set, enabling unsafe sysctls)",
                url="https://kubernetes.io/docs/tasks/administer-cluster/sysctl-cluster/",
            ),
            Reference(
                title="Kubernetes: Pod Security Standards, baseline policy (allowed sysctls by version)",
                url="https://kubernetes.io/docs/concepts/security/pod-security-standards/",
            ),
            Reference(
                title="kubelet safe sysctl list (pkg/kubelet/sysctl/safe_sysctls.go)",
                url="https://github.com/kubernetes/kubernetes/blob/master/pkg/kubelet/sysctl/safe_sysctls.go",
            ),
            Reference(
                title="OpenShift Container Platform: Using sysctls in containers",
                url="https://docs.redhat.com/en/documentation/openshift_container_platform/4.16/html/nodes/nodes-containers-sysctls",
            ),
        ],
    )

    def check(self, f: Facts):
        if not isinstance(f, ConfigFacts):
            return self.na("needs the parse results of a linted configuration")
        first: dict[str, Assignment] = {}
        for a in f.assignments:
            if a.syntax == POD_SYSCTLS and a.value is not None and not a.is_glob and a.key:
                first.setdefault(a.key, a)
        if not first:
            return self.na("no sysctls set through a Kubernetes pod's securityContext")
        # every pod sysctl is judged (kernel.shm*, kernel.msg*, vm.*: the kubelet rejects the whole pod for any)
        net_keys = [k for k in first if k.startswith("net.")]
        db = f.kdb.kubernetes if f.kdb is not None else None
        if db is None:
            return self.na("the knowledge base (kernel_db/kubernetes.toml) is not loaded")
        given = f.context.kubernetes_version
        version_s = given or db.default_version
        version = parse_k8s_version(version_s)
        shown = ".".join(map(str, version))
        if given:
            context = [f"Kubernetes {shown} (given: --k8s-version / [context] kubernetes_version)"]
        else:
            context = [f"Kubernetes {shown} assumed (default: a recent release; say --k8s-version X.Y for yours)"]
        newest = parse_k8s_version(db.newest_known)
        if version > newest:
            context.append(
                f"the safe-sysctl table knows releases up to {db.newest_known}; newer kubelets may allow more"
            )
        kernel = f.snapshot.kernel.release

        out = []
        shared = self._host_namespace(f, first, db, context)
        if shared is not None:
            return shared
        for key, a in first.items():
            entry = db.lookup(key)
            if entry is not None and entry.safe_in(version) and not entry.kernel_too_old(f.release):
                continue
            is_net = key.startswith("net.")
            affected = [k for k in net_keys if k != key]
            evidence: dict[str, object] = {
                "sysctl": key,
                "value": a.value,
                "kubernetes": shown,
                "kubernetes_version_source": "given" if given else "assumed",
            }
            if entry is not None and not entry.safe_in(version):
                evidence["safe_since"] = entry.since
                why = (
                    f"{key} joined the kubelet's default safe sysctl set only in Kubernetes {entry.since}; "
                    f"kubelets of Kubernetes {shown}" + ("" if given else " (assumed)") + " reject it"
                )
                severity = Severity.medium if given else Severity.info
            elif entry is not None:
                evidence["needs_kernel"] = entry.kernel
                evidence["kernel"] = kernel
                why = (
                    f"Kubernetes counts {key} as safe only on Linux {entry.kernel} and later (where it is per "
                    f"network namespace); on Linux {kernel} the kubelet drops it from its safe set"
                )
                severity = Severity.medium
            elif db.namespaced is not None and db.namespaced.namespace_of(key) is None:
                evidence["namespaced"] = False
                why = (
                    f"{key} is not in the kubelet's safe set and not a namespaced sysctl (the kubelet knows only "
                    "kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.* and net.* as namespaced): no kubelet can allow "
                    "it, since --allowed-unsafe-sysctls refuses a sysctl that is not known to be namespaced"
                )
                severity = Severity.high
            else:
                why = f"{key} is not in the kubelet's default safe sysctl set (Kubernetes {shown})"
                if db.namespaced is not None:
                    evidence["namespaced"] = db.namespaced.namespace_of(key)
                severity = Severity.medium
            # Pod Security admission judges by policy version, not by the node kernel.
            admission = (
                ""
                if "needs_kernel" in evidence
                else ", and a namespace enforcing the baseline Pod Security level rejects it at admission"
            )
            consequence = (
                ". Such a pod is scheduled but fails to launch with SysctlForbidden on every node whose kubelet "
                f"does not allow it (--allowed-unsafe-sysctls){admission}, so none of the pod's sysctls apply there"
            )
            if evidence.get("namespaced") is False:
                consequence = (
                    ". Such a pod is scheduled but fails to launch with SysctlForbidden on every node, whatever the "
                    "node's configuration, so none of its sysctls apply"
                )
            keys = [key]
            if is_net or not affected:
                tail = f", including {', '.join(affected)}." if affected else "."
            else:
                # it matters for tcpaudit because it takes the pod's net.* settings down with it
                keys = [key, *affected]
                tail = f": {', '.join(affected)} never reach the kernel either."
            if severity is Severity.info:
                consequence = (
                    f". The manifest runs only where every kubelet is {evidence['safe_since']} or newer "
                    "(or allows it): during an upgrade, or on clusters that lag, the pod fails to "
                    "launch with SysctlForbidden and none of its sysctls apply"
                )
                tail = "." if is_net else tail
            out.append(
                self.finding(
                    f,
                    keys=keys,
                    location=a.location,
                    severity=severity,
                    context=context,
                    evidence=evidence,
                    explanation=why + consequence + tail,
                )
            )
        return out or None

    def _host_namespace(
        self, f: ConfigFacts, first: dict[str, Assignment], db: KubeletSafeSysctls, context: list[str]
    ) -> list | None:
        """hostNetwork / hostIPC: the kubelet refuses every sysctl of that namespace, safe or allowed."""
        if not f.host_namespaces or db.namespaced is None:
            return None
        out = []
        for key, a in first.items():
            ns = db.namespaced.namespace_of(key)
            if ns is None or ns not in f.host_namespaces:
                continue
            field = "hostNetwork" if ns == "net" else "hostIPC"
            out.append(
                self.finding(
                    f,
                    keys=[key],
                    location=a.location,
                    severity=Severity.high,
                    context=context,
                    evidence={"sysctl": key, "value": a.value, "shared_namespace": ns, "pod_field": f"{field}: true"},
                    explanation=(
                        f"{key} is set by a pod with {field}: true. The pod shares the node's {ns} namespace, so "
                        "the sysctl would change the node itself; the kubelet's admission refuses it on every node, "
                        f'safe set or --allowed-unsafe-sysctls alike ("{key}" not allowed with host {ns} '
                        "enabled), and the pod fails to launch with SysctlForbidden."
                    ),
                    remediation=(
                        f"Remove the sysctl from the pod, or drop {field}: true; to tune the node itself, set it "
                        "on the node (sysctl.d, tuned, the node configuration of your distribution)."
                    ),
                )
            )
        return out or None
