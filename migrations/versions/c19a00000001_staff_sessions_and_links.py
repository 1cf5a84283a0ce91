"""staff session version, TOTP failures and lock, one-time staff links

Revision ID: c19a00000001
Revises: c21a00000001
Create Date: 2026-12-07 11:30:00

"""
from alembic import op
import sqlalchemy as sa

import webapp.dbtypes


# revision identifiers, used by Alembic.
revision = 'c19a00000001'
down_revision = 'c21a00000001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'staff_link',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('staff_id', sa.Integer(), nullable=False),
        sa.Column(
            'purpose',
            sa.Enum('attivazione', 'password', 'totp', name='stafflinkpurpose', native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('totp_secret', sa.String(length=64), nullable=True),
        sa.Column('created_at', webapp.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', webapp.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column('used_at', webapp.dbtypes.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['staff_id'], ['staff_user.id'], name=op.f('fk_staff_link_staff_id_staff_user')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_link')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_staff_link_token_hash')),
    )
    with op.batch_alter_table('staff_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_link_staff_id'), ['staff_id'], unique=False)

    with op.batch_alter_table('staff_user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('totp_failures', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('locked_at', webapp.dbtypes.UTCDateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('staff_user', schema=None) as batch_op:
        batch_op.drop_column('locked_at')
        batch_op.drop_column('totp_failures')
        batch_op.drop_column('session_version')

    with op.batch_alter_table('staff_link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_link_staff_id'))

    op.drop_table('staff_link')
