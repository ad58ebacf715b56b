"""The first schema: runs and their result rows (samples).

Revision ID: 0001
Revises:
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

from madengine.results.perf_csv import PERF_CSV_HEADER  # madengine v2's 29 columns: a fixed external format

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_RUN_TEXT = ("command", "target", "label", "context_hash", "hub_git_commit", "madengine_version", "host", "output",
             "source", "status")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(80), primary_key=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float),
        *(sa.Column(name, sa.Text, nullable=False, server_default="") for name in _RUN_TEXT),
    )
    op.create_table(
        "results",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("row_key", sa.String(64), nullable=False, unique=True),
        sa.Column("csv_key", sa.String(64), nullable=False, server_default=""),
        sa.Column("run_id", sa.String(80), sa.ForeignKey("runs.run_id"), nullable=False),
        sa.Column("recorded_at", sa.Float, nullable=False),
        *(sa.Column(name, sa.Text, nullable=False, server_default="") for name in PERF_CSV_HEADER),
        sa.Column("value", sa.Float),
        sa.Column("repeat_index", sa.Integer, nullable=False, server_default="0"),
        *(sa.Column(name, sa.Text, nullable=False, server_default="")
          for name in ("node_rank", "reason", "metric_direction", "build_fingerprint", "extra")),
    )
    op.create_index("ix_results_run_id", "results", ["run_id"])
    op.create_index("ix_results_csv_key", "results", ["csv_key"])
    op.create_index("ix_results_benchmark", "results", ["model", "metric", "gpu_architecture"])


def downgrade() -> None:
    op.drop_table("results")
    op.drop_table("runs")
