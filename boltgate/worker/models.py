"""Small persisted state of background workers (stream cursors)."""

from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from boltgate.db.base import Base


class Cursor(Base):
    __tablename__ = "worker_cursors"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)
