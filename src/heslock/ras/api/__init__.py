"""The RAS HTTPS API (FastAPI): thin routers over :mod:`heslock.ras.services`."""

from heslock.ras.api.app import create_app

__all__ = ["create_app"]
