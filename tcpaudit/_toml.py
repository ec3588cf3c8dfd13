"""tomllib on Python 3.11+, tomli before."""

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["tomllib"]
