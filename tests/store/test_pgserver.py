"""The local PostgreSQL of tests and benchmarks (``ragstack.store.pgserver``)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from ragstack.errors import ConfigError
from ragstack.store.engine import make_engine
from ragstack.store.pgserver import LocalPostgres


def test_a_local_server_runs_with_the_settings_it_is_given() -> None:
    with LocalPostgres(settings={"shared_buffers": "48MB", "work_mem": "7MB"}) as pg:
        engine = make_engine(pg.url)
        try:
            with engine.connect() as conn:
                shown = {n: conn.execute(text(f"SHOW {n}")).scalar_one()
                         for n in ("shared_buffers", "work_mem")}  # fmt: skip
        finally:
            engine.dispose()
    assert shown == {"shared_buffers": "48MB", "work_mem": "7MB"}


def test_a_setting_the_server_refuses_is_a_clear_error() -> None:
    pg = LocalPostgres(settings={"shared_bufers": "48MB"})
    with pytest.raises(ConfigError, match="shared_bufers"):
        pg.start()
    pg.stop()


def test_a_setting_that_is_not_a_plain_name_and_value_is_refused_before_any_shell() -> None:
    with pytest.raises(ConfigError, match="bad PostgreSQL setting"):
        LocalPostgres(settings={"work_mem": "4MB; touch /tmp/x"})
