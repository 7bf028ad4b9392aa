"""`meridian serve`: the POST /plan HTTP service (uvicorn), configured by flags and MERIDIAN_* variables."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from service.app.config import add_arguments

    p = sub.add_parser("serve", help="run the HTTP planning service (POST /plan, /docs, /metrics)",
                       description="Serve POST /plan over HTTP. Every setting is a flag and an environment "
                       "variable; flags win. SIGTERM or Ctrl-C finishes in-flight plans, then exits.")
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import gc
    import logging
    import signal
    import sys
    from dataclasses import replace

    import uvicorn

    from service.app import access, create_app, logs
    from service.app.config import ConfigError, from_args, netloc
    from service.cli import UsageError

    try:
        settings = from_args(args)
        token = access.load_token(settings)
        warnings = access.check_start(settings, token)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    # The token is read once; the app gets the value, not the file.
    settings = replace(settings, api_token=token, api_token_file=None)
    _preflight_store(settings.database_url())
    _preflight_listen(settings.host, settings.port)
    if settings.tls_cert and settings.tls_key:
        _preflight_tls(settings.tls_cert, settings.tls_key)
    logs.configure(settings.log_level)
    # Solver threads run Python between CP-SAT calls; a 1 ms switch interval (default 5 ms) lets the event
    # loop take the GIL back sooner, which is what keeps /healthz quick while plans are being solved.
    sys.setswitchinterval(0.001)
    log = logging.getLogger("meridian.service")
    for warning in warnings:
        log.warning(warning)
    app = create_app(settings)
    scheme = "https" if settings.tls_cert else "http"

    class Server(uvicorn.Server):
        """uvicorn, plus: stop reporting ready the moment a shutdown signal arrives, and log the bound port."""

        def handle_exit(self, sig: int, frame: object) -> None:
            app.state.service.begin_drain()
            super().handle_exit(sig, frame)  # type: ignore[arg-type]

        async def startup(self, sockets: list | None = None) -> None:
            await super().startup(sockets)
            # Everything loaded so far (modules, the engine, schemas) lives as long as the process: move it
            # out of the collector's sight, so a full collection walks only the objects of live requests.
            gc.collect()
            gc.freeze()
            if self.started and getattr(self, "servers", None):
                host, port = self.servers[0].sockets[0].getsockname()[:2]
                # Always written, whatever the log level: with --port 0 it is how callers learn the port.
                log.log(max(logging.INFO, log.getEffectiveLevel()), "listening",
                        extra={"host": host, "port": port, "url": f"{scheme}://{netloc(host, port)}",
                               "auth": "token" if token else "none"})

    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None, access_log=False,
                            lifespan="on", timeout_graceful_shutdown=int(settings.shutdown_grace_s) or 1,
                            server_header=False, date_header=True,
                            ssl_certfile=settings.tls_cert, ssl_keyfile=settings.tls_key)
    server = Server(config)
    # uvicorn re-raises the shutdown signal after a graceful stop; with these handlers in place that
    # re-raise is a no-op and the exit status says whether serving went well.
    previous = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return 0 if server.started else 1


def _preflight_listen(host: str, port: int) -> None:
    """Resolve and bind the address once before serving, so a host that is no address here or a port in
    use is one clear line naming the flag and exit status 2 (uvicorn logged "[Errno -2] Name or service
    not known" and exited 3)."""
    import socket

    from service.cli import UsageError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise UsageError(f"--host {host}: not an address to listen on ({getattr(exc, 'strerror', None) or exc})") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as uvicorn binds it
        try:
            sock.bind(addr)
        except OSError as exc:
            raise UsageError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})") from None


def _preflight_store(url: str) -> None:
    """Open the plan log once before serving, so a wrong path or an unreachable database is one clear line
    and exit status 2, not a traceback from inside the server's startup."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from service.app.store import PlanStore, StoreSchemaError
    from service.cli import UsageError

    shown = make_url(url).render_as_string(hide_password=True)
    try:
        PlanStore(url).close()
    except StoreSchemaError as exc:
        raise UsageError(str(exc)) from None
    except (SQLAlchemyError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise UsageError(f"cannot open the plan log at {shown}: {reason}") from None
    except ImportError as exc:          # a dialect whose driver is not installed (mysql:// without MySQLdb)
        raise UsageError(f"--db-url {shown}: its database driver is not installed ({exc.name or exc})") from None


class _EncryptedKey(Exception):
    """Raised by the password callback of `_preflight_tls`: OpenSSL asked for a passphrase."""


def _refuse_passphrase() -> bytes:
    raise _EncryptedKey


def _preflight_tls(cert: str, key: str) -> None:
    """Load the certificate and key once, so a wrong pair is one line naming the file at fault and exit
    status 2. An encrypted key makes OpenSSL ask for its passphrase on the terminal, which blocks where no
    one answers (CI, systemd): the password callback refuses at once instead, and the line says why. uvicorn
    is given no passphrase, so serve needs an unencrypted key."""
    import ssl

    from service.cli import UsageError

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key, password=_refuse_passphrase)
    except _EncryptedKey:
        raise UsageError(f"--tls-key {key}: the private key is encrypted with a passphrase; serve needs an "
                         f"unencrypted key (`openssl pkey -in {key} -out KEY.pem` writes one)") from None
    except ssl.SSLError as exc:
        # OpenSSL's own words ("[SSL] PEM lib (_ssl.c:3905)") do not say which file is wrong
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise UsageError(f"--tls-key {key}: not the private key of --tls-cert {cert}") from None
        try:
            ssl.create_default_context().load_verify_locations(cafile=cert)
        except (ssl.SSLError, OSError):
            raise UsageError(f"--tls-cert {cert}: no PEM certificate in it") from None
        raise UsageError(f"--tls-key {key}: no PEM private key in it") from None
    except OSError as exc:
        raise UsageError(f"--tls-cert {cert} / --tls-key {key}: cannot read them: {exc.strerror or exc}") from None
