"""Write deploy/kubernetes/prometheusrule.yaml: the prometheus-operator PrometheusRule wrapping the rule
groups of deploy/prometheus/tcpaudit-rules.yaml, verbatim (so the two cannot drift apart).

    python deploy/gen_prometheusrule.py          # rewrite the PrometheusRule
    python deploy/gen_prometheusrule.py --check  # exit 1 when it is out of date (the tests do this too)
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RULES = HERE / "prometheus" / "tcpaudit-rules.yaml"
OUT = HERE / "kubernetes" / "prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/tcpaudit-rules.yaml by deploy/gen_prometheusrule.py: edit that file
# and rerun the script. The same alert groups as a prometheus-operator PrometheusRule (kube-prometheus,
# kube-prometheus-stack). A Prometheus custom resource loads only the PrometheusRules its ruleSelector
# matches: add the label yours selects on (kube-prometheus-stack: `release: <helm release>`).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: tcpaudit
  namespace: tcpaudit
  labels:
    app.kubernetes.io/name: tcpaudit
    app.kubernetes.io/component: alerting-rules
spec:
"""


def render(rules_text: str) -> str:
    lines = rules_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("groups:"))
    body = ["  " + line if line.strip() else "" for line in lines[start:]]
    return HEADER + "\n".join(body) + "\n"


def main(argv: list[str]) -> int:
    text = render(RULES.read_text(encoding="utf-8"))
    if "--check" in argv:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT.relative_to(HERE.parent)} is out of date: run python deploy/gen_prometheusrule.py")
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
