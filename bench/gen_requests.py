"""Write one generated plan request as JSON: `python bench/gen_requests.py medium --seed 1 > req.json`.

The generator itself lives in `datasets/requests.py`, importable by the benchmarks and the tests alike.
"""

from __future__ import annotations

import argparse
import json
import sys

from datasets.requests import SIZES, generate_size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("size", choices=sorted(SIZES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=None, help="policy.time_limit_s (default: the size's)")
    args = ap.parse_args(argv)
    json.dump(generate_size(args.size, seed=args.seed, time_limit_s=args.time_limit), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
