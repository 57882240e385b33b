"""merchant plans and periods, and the payments redeemed for accounts (paid signup, renewals)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 16:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import boltgate.db.base

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("plan_tier", sa.String(length=32), server_default="unmetered", nullable=False)
        )
        batch_op.add_column(sa.Column("trial_ends_at", boltgate.db.base.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("current_period_end", boltgate.db.base.UTCDateTime(), nullable=True))

    op.create_table(
        "account_payments",
        sa.Column("payment_hash", sa.String(length=64), nullable=False),
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("plan_tier", sa.String(length=32), nullable=False),
        sa.Column("amount_sats", sa.BigInteger(), nullable=False),
        sa.Column("period_end", boltgate.db.base.UTCDateTime(), nullable=False),
        sa.Column("created_at", boltgate.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_account_payments_merchant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("payment_hash", name=op.f("pk_account_payments")),
    )
    with op.batch_alter_table("account_payments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_account_payments_merchant_id"), ["merchant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("account_payments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_account_payments_merchant_id"))
    op.drop_table("account_payments")

    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.drop_column("current_period_end")
        batch_op.drop_column("trial_ends_at")
        batch_op.drop_column("plan_tier")
