"""`meridian` command line: a dispatcher over service/commands/*, one module per subcommand.

Each command module exposes `register(subparsers)`, which adds its parser and sets `func`;
handlers return an exit code. Errors a user can fix print one clear line, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from models.errors import BadRequest
from service.errors import OutputError, UsageError

# Subcommand modules under service.commands, in the order `meridian --help` lists them.
COMMANDS = ["plan", "serve", "executor_check", "replay", "whatif", "run"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meridian", description="Meridian: elastic, preemptible placement of AI jobs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"service.commands.{name}").register(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (what `timeout`, systemd and a plain `kill` send), taken as an interrupt: the command stops
    the way Ctrl-C stops it (a run's workers checkpoint and exit, a replay's staging folder is removed)
    instead of dying at once and leaving its workers running."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "serve" and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)     # (the server drains its requests on SIGTERM itself)
    try:
        return int(args.func(args) or 0)
    except BadRequest as exc:
        print(f"meridian {args.command}: bad request: {len(exc.errors)} error(s)", file=sys.stderr)
        for e in exc.errors[:50]:
            print(f"  {_printable(str(e))}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"meridian {args.command}: {_printable(str(exc))}", file=sys.stderr)
        return 2
    except OutputError as exc:
        print(f"meridian {args.command}: {_printable(str(exc))}", file=sys.stderr)
        return 1
    except Terminated:
        print(f"meridian {args.command}: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"meridian {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of standard output went away (`| head`): nothing more to say to it
        sys.stderr.close()
        return 1
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, never a traceback
        text = str(exc).splitlines()[0] if str(exc) else ""
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        print(f"meridian {args.command}: internal error ({type(exc).__name__}): {text[:300]}", file=sys.stderr)
        return 1


def _printable(text: str) -> str:
    """One line that any terminal encoding can take: lone surrogates escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


if __name__ == "__main__":
    sys.exit(main())
