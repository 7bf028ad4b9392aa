"""Service settings: defaults, overridden by MERIDIAN_* environment variables, overridden by flags.

One table (`FIELDS`) drives all three, so a setting cannot exist as a flag and be missing as an
environment variable, and `meridian serve --help` always lists the variable beside the flag.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from models.validate import Limits


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    db_path: str = "meridian-plans.sqlite"
    db_url: str | None = None
    workers: int = max(1, os.cpu_count() or 1)
    queue: int = 64
    max_wait_s: float = 20.0
    solver_nice: int = 10
    min_budget_s: float | None = 0.5
    warm_cache: int = 4
    max_body_bytes: int = 16 * 1024 * 1024
    body_timeout_s: float = 30.0
    max_jobs: int = 20_000
    max_nodes: int = 50_000
    max_devices: int = 400_000
    max_time_limit_s: float = 60.0
    shutdown_grace_s: float = 60.0
    log_level: str = "info"
    api_token_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    # Not flags: a token on the command line would show in `ps`. MERIDIAN_API_TOKEN sets it; tests pass it.
    api_token: str | None = None
    insecure_no_auth: bool = False

    def limits(self) -> Limits:
        return Limits(max_devices=self.max_devices, max_nodes=self.max_nodes, max_jobs=self.max_jobs,
                      max_time_limit_s=self.max_time_limit_s)

    def database_url(self) -> str:
        """The SQLAlchemy URL of the plan log: the PostgreSQL (or other) URL when given, else the SQLite file."""
        if self.db_url:
            return self.db_url
        return f"sqlite:///{os.path.abspath(self.db_path)}"


def _int(text: str) -> int:
    """int(text), refused in words a user reads (int's own: "invalid literal for int() with base 10")."""
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"must be a whole number, got {text!r}") from None


def _float(text: str) -> float:
    """float(text), refused in words a user reads (float's own: "could not convert string to float")."""
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"must be a number, got {text!r}") from None


def _positive_int(text: str) -> int:
    v = _int(text)
    if v < 1:
        raise ValueError(f"must be >= 1, got {v}")
    return v


def _nonneg_int(text: str) -> int:
    v = _int(text)
    if v < 0:
        raise ValueError(f"must be >= 0, got {v}")
    return v


def _port(text: str) -> int:
    v = _int(text)
    if not 0 <= v <= 65535:
        raise ValueError(f"must be a TCP port 0..65535, got {v}")
    return v


def _positive_float(text: str) -> float:
    v = _float(text)
    if not (v > 0 and v < float("inf")):
        raise ValueError(f"must be a finite number > 0, got {text}")
    return v


def _budget_floor(text: str) -> float | None:
    if text.lower() in ("off", "none"):
        return None
    return _positive_float(text)


def _nice(text: str) -> int:
    v = _int(text)
    if not 0 <= v <= 19:
        raise ValueError(f"must be 0..19, got {v}")
    return v


def _log_level(text: str) -> str:
    v = text.lower()
    if v not in ("debug", "info", "warning", "error"):
        raise ValueError(f"must be debug, info, warning or error, got {text!r}")
    return v


def _text(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


def _db_path(text: str) -> str:
    """A file path, not a folder (a folder failed later as "unable to open database file", not naming the flag)."""
    _text(text)
    if os.path.isdir(text):
        raise ValueError(f"a folder, not the plan log's SQLite file (e.g. {os.path.join(text, 'meridian-plans.sqlite')})")
    return text


def netloc(host: str, port: int) -> str:
    """`host:port` as a URL writes it: an IPv6 address in brackets (RFC 3986; `::1:8080` cannot be told apart
    from an address), a zone index's `%` escaped (RFC 6874)."""
    if ":" in host and not host.startswith("["):
        host = "[" + host.replace("%", "%25") + "]"
    return f"{host}:{port}"


def _db_url(text: str) -> str:
    """A URL SQLAlchemy can parse (checked now: a bad one failed at startup as an internal error)."""
    _text(text)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        raise ValueError("not a SQLAlchemy URL (e.g. postgresql+psycopg://user:pw@127.0.0.1/meridian)") from None
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise ValueError("an in-memory SQLite plan log is not durable and each connection would see an empty "
                         "one: give a file (--db-path, or sqlite:////path/to/file)")
    return text


# name -> (parser, flag help). The environment variable is MERIDIAN_<NAME upper-cased>.
FIELDS: dict[str, tuple[Callable[[str], Any], str]] = {
    "host": (_text, "address to listen on (loopback by default)"),
    "port": (_port, "TCP port (0 picks a free one)"),
    "db_path": (_db_path, "SQLite file of the plan log (used unless --db-url is given)"),
    "db_url": (_db_url, "SQLAlchemy URL of the plan log, e.g. postgresql+psycopg://user:pw@127.0.0.1/meridian"),
    "workers": (_positive_int, "plans solved at once (worker threads)"),
    "queue": (_nonneg_int, "plans admitted to wait for a worker; beyond it: 429"),
    "max_wait_s": (_positive_float, "refuse (429) a plan whose estimated queue wait plus solve exceeds this"),
    "min_budget_s": (_budget_floor, ("under load, cut a plan's time limit to its fair share of max-wait-s, "
                                     "never below this (off: never cut; deterministic plans are never cut)")),
    "warm_cache": (_nonneg_int, ("fleets whose last plan is kept in memory to re-plan their next request warm "
                                 "(placement/replan.py; 0: off; ?warm=false opts one request out)")),
    "solver_nice": (_nice, "CPU niceness of solver threads (0-19): request handling and /healthz go first"),
    "max_body_bytes": (_positive_int, "largest request body accepted (413 beyond)"),
    "body_timeout_s": (_positive_float, "a request body must arrive within this (408 beyond)"),
    "max_jobs": (_positive_int, "largest number of jobs in a request (422 beyond)"),
    "max_nodes": (_positive_int, "largest number of nodes in a request's fleet (422 beyond)"),
    "max_devices": (_positive_int, "largest number of devices in a request's fleet (422 beyond)"),
    "max_time_limit_s": (_positive_float, "largest policy.time_limit_s accepted (422 beyond)"),
    "shutdown_grace_s": (_positive_float, "on SIGTERM, how long in-flight plans may take to finish"),
    "log_level": (_log_level, "debug, info, warning or error"),
    "api_token_file": (_text, ("file whose first line is the bearer token every route but /healthz and /readyz "
                               "requires (or set MERIDIAN_API_TOKEN); required with a non-loopback --host")),
    "tls_cert": (_text, "PEM certificate (chain) to serve HTTPS; needs --tls-key"),
    "tls_key": (_text, "PEM private key of --tls-cert"),
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_name(name: str) -> str:
    return "MERIDIAN_" + name.upper()


class ConfigError(ValueError):
    """A setting that cannot be used; names the flag or variable and the value."""


def from_env(environ: Mapping[str, str] | None = None, base: Settings | None = None) -> Settings:
    """Settings from MERIDIAN_* variables over `base` (the defaults)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, (parse, _) in FIELDS.items():
        raw = environ.get(env_name(name))
        if raw is None or raw == "":
            continue
        try:
            values[name] = parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{env_name(name)}={raw!r}: {exc}") from None
    token = environ.get("MERIDIAN_API_TOKEN")
    if token:
        values["api_token"] = token
    raw = environ.get("MERIDIAN_INSECURE_NO_AUTH")
    if raw is not None:
        if raw.lower() not in _TRUE | _FALSE:
            raise ConfigError(f"MERIDIAN_INSECURE_NO_AUTH={raw!r}: must be 1/true/yes or 0/false/no")
        values["insecure_no_auth"] = raw.lower() in _TRUE
    return replace(base or Settings(), **values)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting; each defaults to None so that unset flags leave env and defaults alone."""
    defaults = Settings()
    for name, (_, help_text) in FIELDS.items():
        default = getattr(defaults, name)
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default=None, metavar=name.split("_")[-1].upper(),
                            help=f"{help_text} [env {env_name(name)}; default {default}]")
    parser.add_argument("--insecure-no-auth", dest="insecure_no_auth", action="store_true", default=None,
                        help="serve a non-loopback --host without a token: anyone who reaches it can plan and read "
                        "every plan [env MERIDIAN_INSECURE_NO_AUTH]")


def from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """Flags over environment over defaults."""
    settings = from_env(environ)
    values: dict[str, Any] = {}
    for name, (parse, _) in FIELDS.items():
        raw = getattr(args, name, None)
        if raw is None:
            continue
        try:
            values[name] = parse(str(raw))
        except ValueError as exc:
            raise ConfigError(f"--{name.replace('_', '-')} {raw}: {exc}") from None
    if getattr(args, "insecure_no_auth", None):
        values["insecure_no_auth"] = True
    if "db_path" in values and "db_url" in values:
        raise ConfigError("--db-path and --db-url are both given: the plan log is one or the other")
    if "db_path" in values:             # a flag wins over MERIDIAN_DB_URL, which would otherwise take precedence
        values["db_url"] = None
    return replace(settings, **values)


def describe(settings: Settings) -> dict[str, Any]:
    """The settings as they are logged at startup (a password in the URL is masked)."""
    out = {f.name: getattr(settings, f.name) for f in fields(settings)}
    if settings.db_url:
        out["db_url"] = _mask_password(settings.db_url)
    if settings.api_token:
        out["api_token"] = "(set)"
    return out


def _mask_password(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a log line must never fail on a bad URL
        return "(unparsable URL)"
