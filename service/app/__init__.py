"""The HTTP service (`meridian serve`): FastAPI over the placement engine, with a durable plan log."""

from service.app.config import Settings
from service.app.main import create_app

__all__ = ["Settings", "create_app"]
