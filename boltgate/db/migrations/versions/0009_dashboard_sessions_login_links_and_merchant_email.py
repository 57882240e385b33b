"""dashboard sessions, email sign-in links and the merchant's email

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 16:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import boltgate.db.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dashboard_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", boltgate.db.base.UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", boltgate.db.base.UTCDateTime(), nullable=False),
        sa.Column("expires_at", boltgate.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_dashboard_sessions_merchant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_dashboard_sessions")),
    )
    with op.batch_alter_table("dashboard_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dashboard_sessions_merchant_id"), ["merchant_id"], unique=False)

    op.create_table(
        "dashboard_login_links",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", boltgate.db.base.UTCDateTime(), nullable=False),
        sa.Column("expires_at", boltgate.db.base.UTCDateTime(), nullable=False),
        sa.Column("used_at", boltgate.db.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_dashboard_login_links_merchant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_dashboard_login_links")),
    )
    with op.batch_alter_table("dashboard_login_links", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dashboard_login_links_merchant_id"), ["merchant_id"], unique=False
        )

    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=254), nullable=True))
        batch_op.create_index(batch_op.f("ix_merchants_email"), ["email"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_merchants_email"))
        batch_op.drop_column("email")

    with op.batch_alter_table("dashboard_login_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dashboard_login_links_merchant_id"))
    op.drop_table("dashboard_login_links")

    with op.batch_alter_table("dashboard_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dashboard_sessions_merchant_id"))
    op.drop_table("dashboard_sessions")
