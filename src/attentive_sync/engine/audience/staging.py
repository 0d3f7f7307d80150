"""The membership of an audience in a source database other than the state store's,
copied into a temporary table of the store's connection so the diff can join it there.

The ids go through the drivers' own bulk paths, a page at a time (a server-side cursor on
PostgreSQL; ``executemany`` into SQLite, ``COPY`` into PostgreSQL): a million ids take
seconds, where SQLAlchemy row objects took twenty.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Engine, MetaData, Table
from sqlalchemy.engine import Connection, Dialect

from attentive_sync.sources.schema import audience_members

# Member ids copied per round trip.
STAGE_PAGE = 50_000

staged = Table(
    "audience_diff_members",
    MetaData(),
    Column("customer_id", BigInteger, nullable=False),
    prefixes=["TEMPORARY"],
)
# Built once the ids are in: faster than keeping it up to date while they arrive.
_INDEX = f"CREATE INDEX ix_{staged.name} ON {staged.name} (customer_id)"


def stage_members(source: Engine, conn: Connection, audience: str) -> Table:
    """The audience's member ids, in a temporary table of ``conn`` (its transaction)."""
    staged.create(conn)
    _copy_members(source, conn, audience)
    conn.exec_driver_sql(_INDEX)
    return staged


def drop_staged(conn: Connection) -> None:
    staged.drop(conn)


def _copy_members(source: Engine, conn: Connection, audience: str) -> None:
    """Copy the audience's member ids from the source into the staged table."""
    m = audience_members
    read = f"SELECT customer_id FROM {m.name} WHERE audience_slug = {_mark(source.dialect)}"
    with source.connect() as src:
        raw = src.connection.dbapi_connection
        assert raw is not None
        # A named (server-side) cursor on PostgreSQL: pages stream instead of arriving whole.
        reader = (
            raw.cursor("audience_diff") if source.dialect.name == "postgresql" else raw.cursor()
        )
        reader.execute(read, (audience,))
        target = conn.connection.dbapi_connection
        assert target is not None
        writer = target.cursor()
        while page := reader.fetchmany(STAGE_PAGE):
            if conn.dialect.name == "postgresql":
                with writer.copy(f"COPY {staged.name} (customer_id) FROM STDIN") as copy:
                    for row in page:
                        copy.write_row(row)
            else:
                writer.executemany(f"INSERT INTO {staged.name} VALUES (?)", page)
        reader.close()


def _mark(dialect: Dialect) -> str:
    """The driver's placeholder for one positional parameter."""
    return "?" if dialect.paramstyle == "qmark" else "%s"
