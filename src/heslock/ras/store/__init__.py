"""RAS storage: SQLAlchemy 2 (async) models, the engine factory and Alembic migrations.

SQLite (WAL, ``synchronous=FULL``) is the embedded default; PostgreSQL (asyncpg) is the
production and cluster store. One migration tree serves both.
"""

from heslock.ras.store.base import Base, UTCDateTime, utcnow
from heslock.ras.store.engine import create_engine, create_sessionmaker

__all__ = ["Base", "UTCDateTime", "create_engine", "create_sessionmaker", "utcnow"]
