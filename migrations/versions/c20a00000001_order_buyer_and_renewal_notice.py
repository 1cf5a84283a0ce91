"""one buyer per order (billing data copied at confirm) and the last renewal notice per service

Revision ID: c20a00000001
Revises: c19a00000001
Create Date: 2026-12-07 11:40:00.000000

"""
from alembic import op
import sqlalchemy as sa

import webapp.dbtypes


# revision identifiers, used by Alembic.
revision = 'c20a00000001'
down_revision = 'c19a00000001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('buyer_type', sa.Enum('private', 'business', 'public', name='customertype', native_enum=False, length=32), nullable=True))
        batch_op.add_column(sa.Column('buyer', sa.JSON(), nullable=True))

    with op.batch_alter_table('service', schema=None) as batch_op:
        batch_op.add_column(sa.Column('announced_period', webapp.dbtypes.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('announced_cents', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('announced_years', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('announced_card_id', sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('service', schema=None) as batch_op:
        batch_op.drop_column('announced_card_id')
        batch_op.drop_column('announced_years')
        batch_op.drop_column('announced_cents')
        batch_op.drop_column('announced_period')

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('buyer')
        batch_op.drop_column('buyer_type')
