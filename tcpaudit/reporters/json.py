"""JSON per the report contract (README.md, "JSON report"). json escapes control characters itself."""

from __future__ import annotations

import json

from ..model import Report


def render(report: Report, **_: object) -> str:
    return json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"
