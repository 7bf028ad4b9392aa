"""`meridian plan REQUEST.json|-  [-o FILE]`: one plan, as the contract's response JSON."""

from __future__ import annotations

import argparse
import sys

from datasets.files import write_atomic
from models.validate import parse_request_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="plan one request (contract v1 JSON) and print the response")
    p.add_argument("request", help="request JSON file, or - for standard input")
    p.add_argument("-o", "--output", help="write the response here (atomically) instead of standard output")
    p.add_argument("--greedy", action="store_true", help="the greedy planner alone (a baseline)")
    p.add_argument("--time-limit", type=float, help="override policy.time_limit_s")
    p.add_argument("--indent", type=int, default=None, help="pretty-print with this indent")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from placement import greedy_plan, plan
    from service.errors import UsageError

    if args.request == "-":
        text = sys.stdin.buffer.read()
    else:
        try:
            with open(args.request, "rb") as f:
                text = f.read()
        except OSError as exc:
            raise UsageError(f"cannot read {args.request}: {exc.strerror}") from None
    req = parse_request_json(text)
    if args.time_limit is not None:
        if not args.time_limit > 0:
            raise UsageError(f"--time-limit must be > 0, got {args.time_limit}")
        req.policy.time_limit_s = args.time_limit
    resp = greedy_plan(req) if args.greedy else plan(req)
    out = resp.model_dump_json(indent=args.indent, exclude_none=False)
    if args.output:
        write_atomic(args.output, out + "\n")
    else:
        sys.stdout.write(out + "\n")
    return 0
