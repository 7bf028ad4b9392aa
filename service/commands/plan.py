"""`meridian plan REQUEST.json|-  [-o FILE]`: one plan, as the contract's response JSON."""

from __future__ import annotations

import argparse
import sys
import time

from datasets.files import write_atomic
from models.validate import parse_request_json

# Up to this size (the bundled example is 2.7 KB; a request of about twenty jobs) CP-SAT loads only if a
# plan searches with it, inside the limit; above it, before the clock (`placement.load_solver`).
SMALL_REQUEST_BYTES = 16_384


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="plan one request (contract v1 JSON) and print the response")
    p.add_argument("request", help="request JSON file, or - for standard input")
    p.add_argument("-o", "--output", help="write the response here (atomically) instead of standard output")
    p.add_argument("--greedy", action="store_true", help="the greedy planner alone (a baseline)")
    p.add_argument("--time-limit", type=float, help="override policy.time_limit_s")
    p.add_argument("--indent", type=int, default=None, help="pretty-print with this indent")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from datasets.files import InputError, check_not_an_input, check_writable_file, read_capped
    from models.limits import MAX_TIME_LIMIT_S
    from placement import greedy_plan, load_solver, plan
    from service.errors import OutputError, UsageError

    if args.time_limit is not None and not 0 < args.time_limit <= MAX_TIME_LIMIT_S:
        raise UsageError(f"--time-limit must be > 0 and at most {MAX_TIME_LIMIT_S:g} s, got {args.time_limit}")
    if args.indent is not None and not 0 <= args.indent <= 16:
        raise UsageError(f"--indent must be between 0 and 16, got {args.indent}")
    if args.output == "":    # `-o ""` (an unset shell variable): a file was asked for, so not standard output
        raise UsageError("-o: must not be empty (a file for the plan)")
    if not args.output and sys.stdout is None:   # started with standard output closed (`>&-`)
        raise UsageError("standard output is closed: give -o FILE for the plan")
    if args.output:                           # before planning: a plan must never be lost to a bad -o
        try:
            check_writable_file(args.output)
            check_not_an_input(args.output, [args.request])
        except InputError as exc:
            raise UsageError(f"-o {args.output}: {exc}") from None
    try:
        text = read_capped(args.request, "request")
    except InputError as exc:
        raise UsageError(str(exc)) from None
    if not args.greedy and len(text) > SMALL_REQUEST_BYTES:
        load_solver()                 # before the clock: a request this size may search with CP-SAT
    started = time.perf_counter()   # the limit counts from here: parsing a planet-size request takes 1-2 s
    req = parse_request_json(text)
    if args.time_limit is not None:
        req.policy.time_limit_s = args.time_limit
    resp = greedy_plan(req, started=started) if args.greedy else plan(req, started=started)
    out = resp.model_dump_json(indent=args.indent, exclude_none=False)
    if args.output:
        try:
            write_atomic(args.output, out + "\n")
        except OSError as exc:   # a full disk or an I/O error is the file's, not the planner's: name it
            raise OutputError(f"-o {args.output}: cannot write the plan: {exc.strerror or exc}") from None
        return 0
    try:
        sys.stdout.write(out + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write the plan to standard output: {exc.strerror or exc} "
                          "(give -o FILE)") from None
    return 0
