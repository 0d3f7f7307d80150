"""``attentive-sync db seed`` end to end on a SQLite file."""

from __future__ import annotations

from sqlalchemy import func, select
from typer.testing import CliRunner

from attentive_sync.cli import app
from attentive_sync.sources.schema import customers
from attentive_sync.store.db import current_revision, head_revision, make_engine

runner = CliRunner()


def test_seed_creates_the_schema_fills_it_and_reports_the_rate(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    args = ["db", "seed", "--customers", "250", "--seed", "9", "--now", "2025-06-01", "--url", url]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "rows/s" in result.stdout and "250" in result.stdout
    engine = make_engine(url)
    try:
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(customers)) == 250
    finally:
        engine.dispose()

    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "--replace" in again.stderr
    assert runner.invoke(app, [*args, "--replace"]).exit_code == 0


def test_seed_reports_user_mistakes_in_one_line(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    bad_now = runner.invoke(app, ["db", "seed", "--customers", "5", "--now", "soon", "--url", url])
    assert bad_now.exit_code == 2 and "--now 'soon'" in bad_now.stderr
    no_dir = f"sqlite:///{tmp_path / 'missing' / 'x.db'}"
    unreachable = runner.invoke(app, ["db", "seed", "--customers", "5", "--url", no_dir])
    assert unreachable.exit_code == 1 and "database error" in unreachable.stderr
    assert "Traceback" not in unreachable.output
