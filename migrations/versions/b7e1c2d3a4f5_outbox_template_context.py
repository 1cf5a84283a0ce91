"""outbox: template and JSON context rendered at send time

Revision ID: b7e1c2d3a4f5
Revises: 4947b90368c6
Create Date: 2026-11-26 10:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "b7e1c2d3a4f5"
down_revision = "cc291a548d6c"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("outbox_email", schema=None) as batch_op:
        batch_op.add_column(sa.Column("template", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("context", sa.JSON(), nullable=True))
        batch_op.alter_column("body_text", existing_type=sa.Text(), nullable=True)


def downgrade():
    with op.batch_alter_table("outbox_email", schema=None) as batch_op:
        batch_op.alter_column("body_text", existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("context")
        batch_op.drop_column("template")
