"""Type mapping between SQLAlchemy column types and Arrow, in both directions.

Reads cast every batch to the Arrow type of the declared column so that all shards agree
on one schema; writes create missing tables with the SQL type of each Arrow field.
"""

from __future__ import annotations

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from ...errors import WriteError

__all__ = ["arrow_type", "exact_collation", "sql_type"]


def arrow_type(sql: sa.types.TypeEngine) -> pa.DataType | None:
    """The Arrow type for a SQL column type, or ``None`` when the values must decide."""
    if isinstance(sql, sa.Boolean):
        return pa.bool_()
    if isinstance(sql, mysql.TINYINT) and getattr(sql, "display_width", None) == 1:
        return pa.bool_()  # MySQL's BOOLEAN is TINYINT(1)
    if isinstance(sql, sa.SmallInteger):
        return pa.int16()
    if isinstance(sql, sa.Integer):  # INTEGER, BIGINT: SQLite's INTEGER is 64-bit anyway
        return pa.int64()
    if isinstance(sql, sa.Float):
        return pa.float64()
    if isinstance(sql, sa.Numeric):
        precision, scale = sql.precision, sql.scale
        if precision and precision <= 38:
            return pa.decimal128(precision, scale or 0)
        return None
    if isinstance(sql, sa.DateTime):
        return pa.timestamp("us", tz="UTC" if sql.timezone else None)
    if isinstance(sql, sa.Date):
        return pa.date32()
    if isinstance(sql, sa.Time):
        return pa.time64("us")
    if isinstance(sql, sa.Interval):
        return pa.duration("us")
    if isinstance(sql, (sa.String, sa.Enum, sa.Uuid)):
        return pa.string()
    if isinstance(sql, sa.LargeBinary | sa.types._Binary):
        return pa.binary()
    return None


def sql_type(
    field: pa.Field, *, is_key: bool, mysql_collation: str | None = None
) -> sa.types.TypeEngine:
    """The SQL column type that stores ``field`` without loss on SQLite, PostgreSQL and MySQL.

    Key columns of variable width get a bounded type because MySQL cannot index TEXT/BLOB.
    ``mysql_collation`` is the collation of text columns on MySQL/MariaDB (see
    :func:`exact_collation`).
    """
    t = field.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_boolean(t):
        return sa.Boolean()
    if pa.types.is_integer(t):
        small = t.bit_width <= 32 and not (pa.types.is_unsigned_integer(t) and t.bit_width == 32)
        return sa.Integer() if small else sa.BigInteger()
    if pa.types.is_floating(t):
        return sa.Double()
    if pa.types.is_decimal(t):
        return sa.Numeric(t.precision, t.scale)
    if pa.types.is_timestamp(t):
        return sa.DateTime(timezone=t.tz is not None).with_variant(
            mysql.DATETIME(fsp=6), "mysql", "mariadb"
        )
    if pa.types.is_date(t):
        return sa.Date()
    if pa.types.is_time(t):
        return sa.Time().with_variant(mysql.TIME(fsp=6), "mysql", "mariadb")
    if pa.types.is_duration(t):
        return sa.Interval()
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t):
        if is_key:
            return sa.String(255).with_variant(
                mysql.VARCHAR(255, collation=mysql_collation), "mysql", "mariadb"
            )
        return sa.Text().with_variant(mysql.LONGTEXT(collation=mysql_collation), "mysql", "mariadb")
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        if is_key:
            return sa.LargeBinary().with_variant(mysql.VARBINARY(255), "mysql", "mariadb")
        return sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_struct(t):
        return sa.JSON()
    raise WriteError(
        f"column {field.name!r} has Arrow type {t}, which has no SQL column type here; "
        "convert it to a number, string, timestamp or list before writing"
    )


def exact_collation(dialect: sa.engine.Dialect) -> str | None:
    """The MySQL/MariaDB collation under which text equals only the same text, else None.

    Their default collations find 'a' = 'A' = 'á' = 'a ': as keys, such values would
    overwrite each other, and a where filter would return rows with other values. Tables
    created here use a binary collation without padding, as SQLite and PostgreSQL compare.
    """
    if dialect.name not in ("mysql", "mariadb"):
        return None
    if getattr(dialect, "is_mariadb", False):
        return "utf8mb4_nopad_bin"
    version = getattr(dialect, "server_version_info", None) or (0,)
    return "utf8mb4_0900_bin" if version >= (8,) else "utf8mb4_bin"
