"""confirmed merchant email: a pending address, the key that confirmed it, links by purpose

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 18:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_pending", sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column("email_key_id", sa.String(length=32), nullable=True))

    # links made before this revision have no address: they no longer sign in (they live 15 minutes)
    with op.batch_alter_table("dashboard_login_links", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("purpose", sa.String(length=16), server_default="sign_in", nullable=False)
        )
        batch_op.add_column(sa.Column("email", sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column("key_id", sa.String(length=32), nullable=True))

    with op.batch_alter_table("dashboard_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=254), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dashboard_sessions", schema=None) as batch_op:
        batch_op.drop_column("email")

    with op.batch_alter_table("dashboard_login_links", schema=None) as batch_op:
        batch_op.drop_column("key_id")
        batch_op.drop_column("email")
        batch_op.drop_column("purpose")

    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.drop_column("email_key_id")
        batch_op.drop_column("email_pending")
