"""Bad input gets a clear PinnacleError naming the problem; never a hang or a password."""

from __future__ import annotations

import logging
import time

import pytest
import sqlalchemy as sa
from conftest import MYSQL_URL, PG_URL

import pinnacle_ray as pr

SECRET = "s3cr3t-Pa55"


def _with_password(url: str, password: str = SECRET) -> str:
    return sa.engine.make_url(url).set(password=password).render_as_string(hide_password=False)


def test_malformed_url_is_refused_without_showing_the_password():
    with pytest.raises(pr.InvalidURL) as info:
        pr.connect(f"postgresql://user:{SECRET}@host:notaport/db")
    assert SECRET not in str(info.value)


def test_unknown_driver_is_refused_with_the_supported_ones():
    with pytest.raises(pr.InvalidURL, match="supported"):
        pr.connect("postgresql+nosuchdriver://u@localhost/db")


@pytest.mark.data
def test_closed_port_fails_fast_with_a_connection_error():
    started = time.monotonic()
    with pytest.raises(pr.DatastoreConnectionError) as info:
        pr.connect(f"postgresql+psycopg://u:{SECRET}@127.0.0.1:1/db")
    assert time.monotonic() - started < 10
    assert SECRET not in str(info.value) and "127.0.0.1" in str(info.value)


@pytest.mark.data
def test_unroutable_server_times_out_within_seconds():
    started = time.monotonic()
    with pytest.raises(pr.DatastoreConnectionError, match=r"10\.255\.255\.1"):
        pr.connect("mysql+pymysql://root@10.255.255.1:3306/test")
    assert time.monotonic() - started < 15


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_wrong_credentials_are_an_authentication_error(backend):
    url = {"postgresql": PG_URL, "mariadb": MYSQL_URL}[backend]
    bad = sa.engine.make_url(url).set(username="no_such_user_pr", password=SECRET)
    try:
        pr.connect(url)
    except pr.DatastoreError as exc:
        pytest.skip(f"!!! {backend} server not reachable: {exc}")
    with pytest.raises(pr.DatastoreAuthenticationError) as info:
        pr.connect(bad.render_as_string(hide_password=False))
    assert SECRET not in str(info.value)


@pytest.mark.data
def test_missing_database_is_a_connection_error():
    try:
        pr.connect(PG_URL)
    except pr.DatastoreError as exc:
        pytest.skip(f"!!! postgresql server not reachable: {exc}")
    url = sa.engine.make_url(PG_URL).set(database="no_such_db_pr")
    with pytest.raises(pr.DatastoreConnectionError, match="no_such_db_pr"):
        pr.connect(url.render_as_string(hide_password=False))


@pytest.mark.data
def test_repr_and_url_mask_the_password():
    try:
        store = pr.connect(_with_password(PG_URL))  # trust auth accepts any password
    except pr.DatastoreError as exc:
        pytest.skip(f"!!! postgresql server not reachable: {exc}")
    assert SECRET not in repr(store) and SECRET not in store.url and "***" in store.url
    with pytest.raises(pr.TableNotFound) as info:
        store.table("no_such_table_pr")
    assert SECRET not in str(info.value)


@pytest.mark.with_mongo
def test_missing_table_names_the_table(store):
    with pytest.raises(pr.TableNotFound, match="no_such_table"):
        store.table("no_such_table")


@pytest.mark.with_mongo
def test_missing_column_names_the_column_and_the_real_ones(store, tables):
    name = tables("cols")
    store.write(name, [{"id": 1, "a": 2}], key="id")
    with pytest.raises(pr.ColumnNotFound, match=r"'nope'.*'id', 'a'"):
        store.table(name, columns=["id", "nope"])


@pytest.mark.with_mongo
def test_where_on_an_unknown_column_is_refused(store, tables):
    name = tables("where")
    store.write(name, [{"id": 1, "a": 2}], key="id")
    with pytest.raises(pr.ColumnNotFound, match="nope"):
        store.table(name, where={"nope": 1})


def test_sql_syntax_error_is_a_query_error(store):
    with pytest.raises(pr.QueryError):
        store.sql("SELEC 1")


def test_sql_on_a_missing_column_is_column_not_found(store, tables):
    name = tables("sqlcol")
    store.write(name, [{"id": 1}], key="id")
    quoted = store._engine.dialect.identifier_preparer.quote(name)
    with pytest.raises(pr.ColumnNotFound):
        store.sql(f"SELECT nope FROM {quoted}")


def test_more_than_one_statement_is_refused(store):
    with pytest.raises(pr.QueryError, match="more than one statement"):
        store.sql("SELECT 1 AS a; DROP TABLE x")


@pytest.mark.with_mongo
def test_key_not_in_the_result_is_refused(store, tables):
    name = tables("key")
    store.write(name, [{"id": 1, "a": 2}], key="id")
    with pytest.raises(pr.InvalidKey, match=r"'zzz'.*'id', 'a'"):
        store.table(name, columns=["id", "a"], key="zzz")


def test_key_that_cannot_be_split_is_refused(store, tables):
    name = tables("blobkey")
    store.write(name, [{"id": 1, "blob": b"x"}], key="id")
    with pytest.raises(pr.InvalidKey, match="blob"):
        store.table(name, key="blob")


def test_bad_identifiers_are_refused_before_any_sql(store):
    with pytest.raises(pr.InvalidIdentifier, match="NUL"):
        store.table("bad\x00name")
    # Past each backend's own limit (PostgreSQL 63 bytes, MySQL/MariaDB 64 characters).
    limit, unit = {"postgresql": (63, "bytes"), "mysql": (64, "characters")}.get(
        store.identifier_dialect, (1024, "characters")
    )
    with pytest.raises(pr.InvalidIdentifier, match=f"the limit is {limit} {unit}"):
        store.table("x" * (limit + 1))


def test_nan_in_where_is_refused(store, tables):
    name = tables("nan")
    store.write(name, [{"id": 1, "a": 2.0}], key="id")
    with pytest.raises(pr.ConfigError, match="NaN"):
        store.table(name, where={"a": float("nan")})


@pytest.mark.with_mongo
def test_bad_shard_count_is_refused(store, tables):
    name = tables("shards")
    store.write(name, [{"id": 1}], key="id")
    with pytest.raises(pr.ConfigError, match="shards"):
        store.table(name).to_dataset(shards=0)


def test_in_memory_sqlite_cannot_be_read_by_workers():
    store = pr.connect("sqlite://")
    store.write("t", [{"id": 1}], key="id")
    with pytest.raises(pr.ConfigError, match="in-memory"):
        store.table("t").to_dataset()


@pytest.mark.data
def test_an_error_inside_a_read_task_reaches_the_user_as_its_own_type(store, tables):
    name = tables("vanish")
    store.write(name, [{"id": i} for i in range(10)], key="id")
    ds = store.table(name).to_dataset(shards=2)  # planned while the table exists
    with store._engine.begin() as conn:
        conn.execute(sa.schema.DropTable(sa.Table(name, sa.MetaData())))
    with pytest.raises(pr.TableNotFound, match=name):
        ds.materialize()


@pytest.mark.data
def test_no_password_in_logs_while_reading(tmp_path, caplog):
    try:
        store = pr.connect(_with_password(PG_URL))
    except pr.DatastoreError as exc:
        pytest.skip(f"!!! postgresql server not reachable: {exc}")
    with caplog.at_level(logging.DEBUG):
        store.write("pr_secret_probe", [{"id": 1}], key="id")
        store.sql("SELECT * FROM pr_secret_probe").to_dataset().take_all()
        with store._engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE pr_secret_probe"))
    assert SECRET not in caplog.text


def test_a_sqlite_file_in_a_missing_folder_names_the_folder(tmp_path):
    with pytest.raises(pr.DatastoreConnectionError, match="does not exist"):
        pr.connect(tmp_path / "nowhere" / "shop.db")
