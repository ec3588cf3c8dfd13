"""pydantic's validation errors in tcpaudit's words: where (the keys, cleaned) and what is wrong.

pydantic says "Field required", "Input should be a valid integer, unable to parse string as an integer" or
"Value error, ..."; a user should read "missing", "must be an integer" and our own message. Every loader
that reports a ValidationError goes through `first_error`.
"""

from __future__ import annotations

import re
from typing import Any

from .sanitize import clean_text

_BY_TYPE = {
    "missing": "missing (required)",
    "extra_forbidden": "unknown key",
    "int_parsing": "must be an integer",
    "int_type": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "finite_number": "not a finite number (NaN, Infinity and numbers too large for a float are refused)",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a table (an object)",
    "model_type": "must be a table (an object)",
    "model_attributes_type": "must be a table (an object)",
    "date_parsing": "must be a date (YYYY-MM-DD)",
    "date_from_datetime_parsing": "must be a date (YYYY-MM-DD)",
    "date_type": "must be a date (YYYY-MM-DD)",
}
_SHOULD = re.compile(r"^(?:Input|String|List|Value|Dictionary|Tuple|Set|Number) should ")


def message(err: Any) -> str:
    """One error of `ValidationError.errors()` as a phrase (no location)."""
    kind = str(err.get("type", ""))
    if kind in _BY_TYPE:
        return _BY_TYPE[kind]
    msg = str(err.get("msg", "invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return _SHOULD.sub("must ", msg, count=1)


def first_error(exc: Any, top: str = "top level") -> str:
    """'context.nat_idle_timeout: must be an integer' for the first error of a ValidationError, keys cleaned
    (they come from the file: untrusted), with how many more there are."""
    errors = exc.errors()
    err = errors[0]
    where = clean_text(".".join(str(x) for x in err.get("loc", ())), 200) or top
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {clean_text(message(err), 300)}{more}"
