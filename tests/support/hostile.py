"""Hostile inputs for the generated bad-input tests (issue 9): a valid document with one value replaced by
an extreme number, a lone surrogate, a wrong type, or its text re-encoded wrongly; and a runner that calls
the `meridian` command line in-process and returns (exit code, stdout, stderr).

Every command must answer such input with exit 0 (it was fine after all) or exit 2 and one line per fault
naming the field or file, never a traceback and never exit 1.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Bounded, derandomized, no example database: the same cases every run, a few seconds per test.
GENERATED = settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)

EXTREME_NUMBERS: list[Any] = [
    0, -1, 1, 2**31, 2**53 + 1, 2**62, 2**63 - 1, 2**63, 2**64, 10**30, -(10**30),
    0.0, -0.0, 0.5, 1e-9, 1e-320, 5e-324, 1e15, 1e16, 1e300, 1e308, -1e308,
]
ODD_VALUES: list[Any] = ["", "x" * 5000, "\udfff", "speech-\ud800", "\ud83d", True, False, None, [], {}, [1, 2],
                         {"a": 1}, "NaN", "1e400"]


def leaf_paths(doc: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path to a scalar (and to each object/array) in a JSON document."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield (*prefix, k)
            yield from leaf_paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield (*prefix, i)
            yield from leaf_paths(v, (*prefix, i))


def replaced(doc: Any, path: tuple, value: Any) -> Any:
    out = copy.deepcopy(doc)
    node = out
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return out


def dumps(doc: Any) -> bytes:
    """JSON text as a file holds it; lone surrogates travel as escapes (json.dumps writes them so)."""
    return json.dumps(doc).encode("ascii")


@st.composite
def hostile_json(draw: st.DrawFn, doc: Any, extra_paths: list[tuple] | None = None) -> bytes:
    """The bytes of `doc` with one hostile change: a value replaced, or the whole text mangled."""
    kind = draw(st.sampled_from(["number", "number", "odd", "encoding"]))
    if kind == "encoding":
        text = json.dumps(doc)
        how = draw(st.sampled_from(["utf-16", "latin-1-accent", "bom", "truncated", "nan", "bytes", "empty", "nul"]))
        if how == "utf-16":
            return text.encode("utf-16")
        if how == "latin-1-accent":
            return text.replace('"', '"\xe9', 1).encode("latin-1")
        if how == "bom":
            return b"\xef\xbb\xbf" + text.encode()
        if how == "truncated":
            return text.encode()[: draw(st.integers(0, max(0, len(text) - 1)))]
        if how == "nan":
            return text.replace("1.0", "NaN", 1).replace("300", "Infinity", 1).encode()
        if how == "nul":
            return b"\x00" * 64
        if how == "empty":
            return b""
        return draw(st.binary(min_size=1, max_size=200))
    paths = list(leaf_paths(doc)) + (extra_paths or [])
    path = draw(st.sampled_from(paths))
    value = draw(st.sampled_from(EXTREME_NUMBERS if kind == "number" else ODD_VALUES))
    return dumps(replaced(doc, path, value))


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """`meridian ARGV` in this process: (exit code, stdout, stderr)."""
    from service.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:             # argparse refusing a flag
            code = int(exc.code or 0)
    # what a terminal or a pipe would have to take: UTF-8 text (a lone surrogate would fail to print there)
    out.getvalue().encode("utf-8")
    err.getvalue().encode("utf-8")
    return code, out.getvalue(), err.getvalue()


def assert_clean_refusal(code: int, err: str, command: str) -> None:
    """Exit 0, or exit 2 with `meridian COMMAND: ...` lines; never a traceback, never exit 1."""
    assert "Traceback" not in err, err
    assert code in (0, 2), (code, err[-2000:])
    if code == 2:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert lines and (lines[0].startswith(f"meridian {command}:") or lines[0].startswith("usage:")), err[-2000:]
        err.encode("utf-8")                   # printable: no lone surrogate reached the terminal


CSV_CELLS: list[str] = ["", " ", "-1", "0", "1e400", "nan", "inf", "-inf", "1e300", str(10**30), "9" * 5000,
                        "1.5", "abc", "premium", "gold", "mars", "x" * 5000, '"', "a,b", "\u00e9"]


@st.composite
def hostile_csv(draw: st.DrawFn, header: list[str], rows: list[list[str]]) -> bytes:
    """A valid CSV trace with one hostile change: a cell replaced, the header changed, or the bytes mangled."""
    kind = draw(st.sampled_from(["cell", "cell", "cell", "header", "encoding"]))
    header, rows = list(header), [list(r) for r in rows]
    if kind == "cell":
        r, c = draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, len(header) - 1))
        rows[r][c] = draw(st.sampled_from(CSV_CELLS))
    elif kind == "header":
        how = draw(st.sampled_from(["duplicate", "drop", "empty", "rename"]))
        i = draw(st.integers(0, len(header) - 1))
        if how == "duplicate":
            header.append(header[i])
            for row in rows:
                row.append(row[i])
        elif how == "drop":
            del header[i]
        elif how == "empty":
            header[i] = ""
        else:
            header[i] = header[i].upper()
    text = "\n".join(",".join(f'"{c}"' if "," in c else c for c in line) for line in [header, *rows]) + "\n"
    if kind != "encoding":
        return text.encode()
    how = draw(st.sampled_from(["bom", "latin-1", "utf-16", "nul", "truncated", "bytes", "empty", "crlf"]))
    if how == "bom":
        return b"\xef\xbb\xbf" + text.encode()
    if how == "latin-1":
        return text.replace(rows[0][0], rows[0][0] + "\xe9", 1).encode("latin-1")
    if how == "utf-16":
        return text.encode("utf-16")
    if how == "nul":
        return text.encode().replace(b",", b"\x00", 1)
    if how == "truncated":
        return text.encode()[: draw(st.integers(0, len(text) - 1))]
    if how == "empty":
        return b""
    if how == "crlf":
        return text.replace("\n", "\r\n").encode()
    return draw(st.binary(min_size=1, max_size=300))
