"""refunds

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 16:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import boltgate.db.base

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "refunds",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("payment_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("amount_sats", sa.BigInteger(), nullable=False),
        sa.Column("max_fee_msat", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("lightning_address", sa.String(length=320), nullable=True),
        sa.Column("payment_request", sa.Text(), nullable=True),
        sa.Column("payment_hash", sa.String(length=64), nullable=True),
        sa.Column("pay_outcome", sa.String(length=16), nullable=True),
        sa.Column("preimage", sa.String(length=64), nullable=True),
        sa.Column("fee_msat", sa.BigInteger(), nullable=True),
        sa.Column("failure", sa.String(length=300), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("claim_expires_at", boltgate.db.base.UTCDateTime(), nullable=True),
        sa.Column("created_at", boltgate.db.base.UTCDateTime(), nullable=False),
        sa.Column("updated_at", boltgate.db.base.UTCDateTime(), nullable=False),
        sa.Column("completed_at", boltgate.db.base.UTCDateTime(), nullable=True),
        sa.Column("failed_at", boltgate.db.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_refunds_merchant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_refunds_payment_id_payments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
        sa.UniqueConstraint(
            "merchant_id", "idempotency_key", name=op.f("uq_refunds_merchant_id_idempotency_key")
        ),
        sa.UniqueConstraint("payment_hash", name=op.f("uq_refunds_payment_hash")),
    )
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.create_index("ix_refunds_merchant_created", ["merchant_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_refunds_payment_id"), ["payment_id"], unique=False)
        batch_op.create_index("ix_refunds_status_created", ["status", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_index("ix_refunds_status_created")
        batch_op.drop_index(batch_op.f("ix_refunds_payment_id"))
        batch_op.drop_index("ix_refunds_merchant_created")

    op.drop_table("refunds")
