"""Kernel release parsing: real uname -r strings, ordering, garbage."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpaudit.kernel.release import KernelRelease, KernelReleaseError, parse_release, parse_version

# raw, version, prerelease, flavour, distro_major, build
RELEASES = [
    ("5.14.21-150400.24.21-default", (5, 14, 21), None, "suse", None, "150400.24.21-default"),
    ("5.4.0-137-generic", (5, 4, 0), None, "ubuntu", None, "137-generic"),
    ("5.15.0-1057-azure", (5, 15, 0), None, "ubuntu", None, "1057-azure"),
    ("3.10.0-1160.83.1.el7.x86_64", (3, 10, 0), None, "rhel", 7, "1160.83.1.el7.x86_64"),
    ("4.18.0-513.5.1.el8_9.x86_64", (4, 18, 0), None, "rhel", 8, "513.5.1.el8_9.x86_64"),
    ("6.1.0-18-amd64", (6, 1, 0), None, "debian", None, "18-amd64"),
    ("4.14.336-257.562.amzn2.x86_64", (4, 14, 336), None, "amzn2", None, "257.562.amzn2.x86_64"),
    ("6.1.79-99.167.amzn2023.x86_64", (6, 1, 79), None, "amzn2023", None, "99.167.amzn2023.x86_64"),
    ("4.14.55-62.37.amzn1.x86_64", (4, 14, 55), None, "amzn1", None, "62.37.amzn1.x86_64"),
    ("6.8.0-1021-aws", (6, 8, 0), None, "ubuntu", None, "1021-aws"),
    ("6.2.0-rc7", (6, 2, 0), "rc7", None, None, None),
    ("2.6.32-754.el6.x86_64", (2, 6, 32), None, "rhel", 6, "754.el6.x86_64"),
    ("4.12", (4, 12, 0), None, None, None, None),
    ("4.12.0", (4, 12, 0), None, None, None, None),
    ("6.18.44-fc-v769", (6, 18, 44), None, None, None, "fc-v769"),
    ("4.18.0-80.11.2.el8_0.x86_64", (4, 18, 0), None, "rhel", 8, "80.11.2.el8_0.x86_64"),
    ("3.10.0-327.el7.x86_64", (3, 10, 0), None, "rhel", 7, "327.el7.x86_64"),
    ("6.5.6-300.fc39.x86_64", (6, 5, 6), None, "fedora", 39, "300.fc39.x86_64"),
    ("v6.2", (6, 2, 0), None, None, None, None),
    # CONFIG_LOCALVERSION_AUTO on a tree with commits past its tag, or a dirty one: uname -r ends in '+'
    ("6.8.0-rc1+", (6, 8, 0), "rc1", None, None, None),
    ("4.19.0+", (4, 19, 0), None, None, None, None),
    ("5.15.0+", (5, 15, 0), None, None, None, None),
    ("5.15.0-1057-azure+", (5, 15, 0), None, None, None, "1057-azure+"),
]


@pytest.mark.parametrize(("raw", "version", "pre", "flavour", "major", "build"), RELEASES)
def test_parse_release_table(raw, version, pre, flavour, major, build):
    rel = parse_release(raw)
    assert rel.raw == raw
    assert rel.version == version
    assert rel.prerelease == pre
    assert rel.flavour == flavour
    assert rel.distro_major == major
    assert rel.build == build


def test_upstream_and_series():
    assert parse_release("5.14.21-150400.24.21-default").upstream == "5.14.21"
    assert parse_release("6.2.0-rc7").upstream == "6.2.0-rc7"
    assert parse_release("6.1.79-99.167.amzn2023.x86_64").series == "6.1"


def test_development_tree_plus_keeps_the_upstream_base_it_follows():
    """`4.19.0+` is 4.19.0 plus commits: it orders with 4.19.0, and `6.8.0-rc1+` with rc1 (before rc2)."""
    assert parse_release("4.19.0+").upstream == "4.19.0"
    assert parse_release("6.8.0-rc1+").upstream == "6.8.0-rc1"
    assert parse_release("4.19.0+").same_version(parse_release("4.19.0"))
    assert parse_release("6.8.0-rc1+").same_version(parse_release("6.8.0-rc1"))
    assert parse_release("6.8.0-rc1") <= parse_release("6.8.0-rc1+") < parse_release("6.8.0-rc2")
    assert parse_release("6.8.0-rc1+") < (6, 8)
    assert parse_release("4.19.0+").at_least("4.19") and not parse_release("4.19.0+").at_least("4.20")
    assert parse_release("4.19.0+") != parse_release("4.19.0")  # equality is about the string


def test_snapshot_of_a_development_kernel_records_its_version():
    import datetime as dt

    from tcpaudit.collect.build import build_snapshot
    from tcpaudit.collect.raw import RawCapture
    from tcpaudit.snapshot import Source

    raw = RawCapture(
        source=Source.file, collected_at=dt.datetime.now(dt.timezone.utc), items={"osrelease": "6.8.0-rc1+\n"}
    )
    kernel = build_snapshot(raw).kernel
    assert (kernel.release, kernel.version) == ("6.8.0-rc1+", "6.8.0-rc1")


@pytest.mark.parametrize(
    "args", [["kernel", "4.19.0+"], ["kernel", "6.8.0-rc1+", "--format", "json"], ["lint", "--kernel", "5.15.0+", "-"]]
)
def test_cli_accepts_development_kernels(args):
    from .cli import run

    p = run(*args, input="net.ipv4.tcp_tw_reuse = 1\n")
    assert p.returncode in (0, 1), p.stderr
    assert "not a kernel release" not in p.stderr and p.stdout


@pytest.mark.parametrize("release", ["-1.2", "-5.4.0-137-generic", "-x"])
def test_cli_kernel_release_starting_with_a_dash_gets_the_release_error(release):
    """`tcpaudit kernel -1.2` was click's four-line "No such option: -1"; it is the release parser's line."""
    from .cli import run

    for args in (["kernel", release], ["kernel", "-f", "json", release], ["kernel", "--", release]):
        p = run(*args)
        assert p.returncode == 2, (args, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and "not a kernel release" in lines[0] and repr(release) in lines[0], p.stderr
        assert p.stdout == ""


def test_cli_kernel_unknown_long_option_is_still_one_usage_line():
    from .cli import run

    p = run("kernel", "--bogus", "5.4")
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "--bogus" in lines[0], p.stderr
    assert run("kernel", "-fjson", "5.4").returncode == 0  # an option with its value attached still parses


def test_surrounding_whitespace_is_stripped():
    assert parse_release("  5.4.0-137-generic\n").raw == "5.4.0-137-generic"


@pytest.mark.parametrize(
    "ordered",
    [
        ["6.2.0-rc1", "6.2.0-rc7", "6.2.0", "6.2.1"],
        ["4.9", "4.12", "4.12.1", "5.0"],
        ["2.6.32-754.el6.x86_64", "3.10.0-327.el7.x86_64", "5.4.0-137-generic", "6.18.44-fc-v769"],
    ],
)
def test_ordering(ordered):
    rels = [parse_release(text) for text in ordered]
    for low, high in pairwise(rels):
        assert low < high
        assert high > low
        assert low <= high
        assert not high < low
    assert sorted([*rels[1:], rels[0]]) == rels


def test_compare_with_tuples():
    rel = parse_release("4.12.0")
    assert rel == (4, 12)
    assert rel == (4, 12, 0)
    assert rel >= (4, 12)
    assert rel < (4, 13)
    assert parse_release("6.2.0-rc7") < (6, 2)
    assert parse_release("6.2.0-rc7") > (6, 1, 99)


def test_equality_is_about_the_parsed_string_ordering_about_the_version():
    a = parse_release("5.4.0-137-generic")
    b = parse_release("5.4.0-150-generic")
    assert a != b
    assert a <= b <= a
    assert a.same_version(b)
    assert hash(a) == hash(parse_release("5.4.0-137-generic"))


def test_at_least():
    rel = parse_release("5.4.0-137-generic")
    assert rel.at_least("5.4")
    assert rel.at_least((4, 19))
    assert not rel.at_least("5.5")
    assert not parse_release("6.2.0-rc7").at_least("6.2")
    assert parse_release("6.2.0-rc7").at_least("6.2.0-rc7")
    with pytest.raises(KernelReleaseError):
        rel.at_least("not-a-version")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4.12", (4, 12, 0)), ("4.12.0", (4, 12, 0)), ("v6.2", (6, 2, 0)), ("5.14.21", (5, 14, 21))],
)
def test_parse_version(text, expected):
    assert parse_version(text) == expected


@pytest.mark.parametrize(
    "text", ["", "   ", "linux", "5", "5.x.1", "5.4.0-137-generic", "6.2-rc7", "10000.1", "1.2.3.4", "v"]
)
def test_parse_version_rejects(text):
    with pytest.raises(KernelReleaseError):
        parse_version(text)


GARBAGE = [
    "",
    "   ",
    "linux",
    "5",
    "5.x.1",
    "x5.4",
    "5.4.0 -generic",
    "99999.1",
    "5.10000.0",
    "5.4.123456",
    "5.4.0-rc99999",
    "5.4.0\x00",
    "5.4.0-137\x1b[31m-generic",
    "5.4.0-137-generic\n6.1",
    "5.4.0-ĝeneric",
    "1.2.3.4",
    "5.4.0-",
    "5.4.0/etc/passwd",
    "5" * 10_000,
    "5.4.0-" + "a" * 10_000,
    "14.0-RELEASE-p3",  # FreeBSD uname -r: not a Linux kernel, must not be judged as Linux 14.0
    "13.2-STABLE",
]


@pytest.mark.parametrize("text", GARBAGE)
def test_garbage_raises_one_line_error(text):
    with pytest.raises(KernelReleaseError) as info:
        parse_release(text)
    message = str(info.value)
    assert "\n" not in message
    assert len(message) < 300
    assert isinstance(info.value, ValueError)


def test_non_string_input_raises_release_error():
    with pytest.raises(KernelReleaseError):
        parse_release(None)  # type: ignore[arg-type]
    with pytest.raises(KernelReleaseError):
        parse_release(5.4)  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_random_text_parses_or_raises_release_error(text):
    try:
        rel = parse_release(text)
    except KernelReleaseError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(rel, KernelRelease)
    assert all(0 <= part <= 9999 for part in rel.version)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 9999),
    st.integers(0, 9999),
    st.integers(0, 9999),
    st.from_regex(r"\A(-[a-z0-9][a-z0-9._+~-]{0,30})?\Z", fullmatch=True),
)
def test_generated_releases_round_trip(major, minor, patch, suffix):
    text = f"{major}.{minor}.{patch}{suffix}"
    try:
        rel = parse_release(text)
    except KernelReleaseError:
        return  # e.g. a suffix like "-.1" that looks like a 4th version component
    assert rel.version == (major, minor, patch)
    assert rel.raw == text
