"""Exit codes: one documented enum (README.md, "Exit codes")."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # nothing at or above --fail-on
    FINDINGS = 1  # findings at or above --fail-on
    USAGE = 2  # usage or input error (bad flag, unreadable or corrupt file, bad host name)
    COLLECTION = 3  # a target could not be collected (unreachable, auth, host key, timeout, bad output)
    INTERNAL = 4  # a bug in tcpaudit (a rule module failed to load, an unexpected exception)
    OUTPUT = 5  # an output file could not be written (missing/unwritable dir, disk full, another writer)
    INTERRUPTED = 130  # Ctrl-C or SIGTERM; the report for what was done is still written
