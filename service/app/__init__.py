"""The HTTP service (`meridian serve`): FastAPI over the placement engine, with a durable plan log.

`create_app` loads on first use: every `meridian` command builds the `serve` parser from
`service.app.config`, and importing the app with it (FastAPI, the pages, the plan log) cost
`meridian plan` 0.4 s before its first byte of work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from service.app.config import Settings

if TYPE_CHECKING:
    from service.app.main import create_app

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from service.app.main import create_app

        return create_app
    raise AttributeError(f"module 'service.app' has no attribute {name!r}")
