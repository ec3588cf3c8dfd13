"""JSON per the report contract (README.md, "JSON report"); control characters are escaped by the serializer.

pydantic-core writes the same indented JSON as json.dumps(indent=2, ensure_ascii=False) in one Rust pass;
the stdlib's indenting encoder is pure Python and was a fifth of a 600-file lint (docs/benchmarks.md).
"""

from __future__ import annotations

import json

from pydantic_core import PydanticSerializationError

from ..model import Report


def render(report: Report, **_: object) -> str:
    try:
        return report.model_dump_json(indent=2) + "\n"
    except PydanticSerializationError:  # a string no encoder can write (a lone surrogate): escape, never crash
        return json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=True) + "\n"
