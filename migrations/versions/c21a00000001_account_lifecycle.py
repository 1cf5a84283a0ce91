"""account lifecycle: confirmed address, closed accounts, one-time links

Revision ID: c21a00000001
Revises: c22a00000001
Create Date: 2026-12-07 11:30:00

"""
from alembic import op
import sqlalchemy as sa

import webapp.dbtypes


# revision identifiers, used by Alembic.
revision = 'c21a00000001'
down_revision = 'c22a00000001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'account_token',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('purpose', sa.Enum('reset', 'confirm', 'email_change', name='tokenpurpose', native_enum=False, length=32), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('new_email', sa.String(length=254), nullable=True),
        sa.Column('created_at', webapp.dbtypes.UTCDateTime(), nullable=False),
        sa.Column('expires_at', webapp.dbtypes.UTCDateTime(), nullable=False),
        sa.Column('spent_at', webapp.dbtypes.UTCDateTime(), nullable=True),
        sa.Column('spent_how', sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('account_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_token_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index('uq_account_token_live', ['customer_id', 'purpose'], unique=True, sqlite_where=sa.text('spent_at IS NULL'), postgresql_where=sa.text('spent_at IS NULL'))

    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email_confirmed_at', webapp.dbtypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('closed_at', webapp.dbtypes.UTCDateTime(), nullable=True))

    # Customers who registered before addresses were confirmed have been buying and receiving
    # the shop's e-mails at theirs: they are not locked out of the checkout now.
    op.execute("UPDATE customer SET email_confirmed_at = created_at")


def downgrade():
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.drop_column('closed_at')
        batch_op.drop_column('email_confirmed_at')

    with op.batch_alter_table('account_token', schema=None) as batch_op:
        batch_op.drop_index('uq_account_token_live', sqlite_where=sa.text('spent_at IS NULL'), postgresql_where=sa.text('spent_at IS NULL'))
        batch_op.drop_index(batch_op.f('ix_account_token_customer_id'))

    op.drop_table('account_token')
