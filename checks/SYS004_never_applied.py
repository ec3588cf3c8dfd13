"""SYS004: a line or a placement that never sets anything."""

from tcpaudit.lint.model import ConfigFacts
from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta


class NeverApplied(Rule):
    meta = RuleMeta(
        id="SYS004",
        title="sysctl setting is written where it never applies",
        severity=Severity.high,
        applies_to=["config"],
        summary=(
            "A sysctl is written in a form or a place that the consuming tool ignores: `sysctls` under a "
            "container's securityContext in Kubernetes, or a sysctl.conf line that is not `key = value`."
        ),
        mechanism=[
            "In Kubernetes only the pod-level PodSecurityContext has a `sysctls` field; sysctls are per network "
            "namespace and all containers of a pod share one. A container's SecurityContext has no such field.",
            "With strict field validation (the kubectl default since 1.27) the API server rejects the manifest; "
            "older clients and many controllers drop the unknown field silently, so the pod starts without the "
            "setting.",
            "In sysctl.conf files a line without '=' or with an empty value is skipped with an 'invalid syntax' "
            "warning at boot, and a key with blanks in it (for example a pasted `sysctl -w` command) cannot be "
            "written.",
            "Either way the value the author meant never reaches the kernel, and the configuration reads as if it did.",
        ],
        when_it_matters=(
            "Always: the setting the author relied on (often a keepalive or port-range fix for a NAT or load "
            "balancer problem) is not in effect."
        ),
        remediation=(
            "Move `sysctls` to spec.securityContext (the pod level; unsafe sysctls also need the kubelet's "
            "--allowed-unsafe-sysctls). Write sysctl.conf lines as `key = value`, one per line."
        ),
        references=[
            Reference(
                title="Kubernetes: Using sysctls in a Kubernetes Cluster",
                url="https://kubernetes.io/docs/tasks/administer-cluster/sysctl-cluster/",
            ),
            Reference(
                title="Kubernetes API: PodSecurityContext.sysctls",
                url="https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#security-context",
            ),
            Reference(
                title="sysctl.conf(5): file format", url="https://man7.org/linux/man-pages/man5/sysctl.conf.5.html"
            ),
        ],
    )

    def check(self, f: Facts):
        if not isinstance(f, ConfigFacts):
            return self.na("needs the parse results of a linted configuration")
        out = []
        for p in f.problems:
            keys = [k for k in p.keys if k]
            out.append(
                self.finding(
                    f,
                    keys=keys,
                    location=p.location,
                    explanation=p.message,
                    severity=Severity.high if p.kind == "placement" else Severity.medium,
                    evidence={"problem": p.kind, "keys": ", ".join(keys)},
                )
            )
        return out or None
