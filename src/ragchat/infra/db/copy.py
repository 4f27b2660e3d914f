"""Copy every table of one ragchat database into another (`ragchat migrate --to postgresql://...`).

Rows are copied as they are, vectors included (float32 values, never re-embedded), table by table in
foreign-key order, each batch in its own transaction. Copying is resumable: rows whose primary key the
target already holds are skipped (the chunks, by far the largest table, resume after the highest row id
copied), so a copy cut short is finished by running it again. The target must be empty, or a copy of
the same source begun earlier: a target holding anything else is refused.

Afterwards the counts of every table (and of documents and chunks per collection) are read on both sides
and compared, and a sample of vectors is compared value for value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, Engine, Integer, Table, func, select, text

from ragchat.infra.db import DatabaseError
from ragchat.infra.db.schema import chunks, documents, meta, metadata

_BATCH = 2_000
_COPY_SOURCE = "copied_from"
_VECTOR_SAMPLE = 1_000


@dataclass(frozen=True, slots=True)
class VerifiedCount:
    """One count read on both sides after the copy."""

    what: str
    source: int
    target: int

    @property
    def matches(self) -> bool:
        return self.source == self.target


Progress = Callable[[str, int, int], None]  # (table, rows copied so far, rows in the table)


def copy_database(source: Engine, target: Engine, source_name: str, progress: Progress) -> None:
    """Copy every table of `source` into `target` (both at the newest schema), resuming an earlier copy."""
    with target.begin() as conn:
        stamp = conn.execute(select(meta.c.value).where(meta.c.key == _COPY_SOURCE)).scalar_one_or_none()
        holds_documents = conn.execute(select(func.count()).select_from(documents)).scalar_one() > 0
        if stamp is None and holds_documents:
            raise DatabaseError("the target database already holds documents; migrate into an empty database")
        if stamp is not None and stamp != source_name:
            raise DatabaseError(f"the target database holds a copy of {stamp}, not of {source_name}")
        if stamp is None:
            conn.execute(meta.insert().values(key=_COPY_SOURCE, value=source_name))
    for table in metadata.sorted_tables:
        if table is chunks:
            _copy_chunks(source, target, progress)
        else:
            _copy_missing_rows(source, target, table, progress)
    with target.begin() as conn:
        _advance_sequences(conn)


def _copy_missing_rows(source: Engine, target: Engine, table: Table, progress: Progress) -> None:
    """Copy the rows of a (small) table whose primary key the target lacks."""
    key = list(table.primary_key.columns)
    with target.connect() as conn:
        present = {tuple(row) for row in conn.execute(select(*key))}
    with source.connect() as conn:
        total = conn.execute(select(func.count()).select_from(table)).scalar_one()
        rows = [dict(row._mapping) for row in conn.execute(select(table))]
    missing = [row for row in rows if tuple(row[column.name] for column in key) not in present]
    done = total - len(missing)
    progress(table.name, done, total)
    for start in range(0, len(missing), _BATCH):
        batch = missing[start : start + _BATCH]
        with target.begin() as conn:
            conn.execute(table.insert(), batch)
        done += len(batch)
        progress(table.name, done, total)


def _copy_chunks(source: Engine, target: Engine, progress: Progress) -> None:
    """Copy chunks in row-id order, resuming after the highest row id the target holds."""
    with target.connect() as conn:
        last = conn.execute(select(func.coalesce(func.max(chunks.c.rowid), 0))).scalar_one()
    with source.connect() as conn:
        total = conn.execute(select(func.count()).select_from(chunks)).scalar_one()
        done = conn.execute(select(func.count()).where(chunks.c.rowid <= last)).scalar_one()
    progress(chunks.name, done, total)
    for batch in _chunk_batches(source, last):
        with target.begin() as conn:
            conn.execute(chunks.insert(), batch)
        done += len(batch)
        progress(chunks.name, done, total)


def _chunk_batches(source: Engine, after: int) -> Iterator[list[dict[str, object]]]:
    while True:
        with source.connect() as conn:
            query = select(chunks).where(chunks.c.rowid > after).order_by(chunks.c.rowid).limit(_BATCH)
            batch = [dict(row._mapping) for row in conn.execute(query)]
        if not batch:
            return
        after = int(str(batch[-1]["rowid"]))
        yield batch


def _advance_sequences(conn: Connection) -> None:
    """Move PostgreSQL's id sequences past the copied ids, so that new rows get new ones."""
    if conn.dialect.name != "postgresql":
        return
    for table in metadata.sorted_tables:
        for column in table.primary_key.columns:
            if len(table.primary_key.columns) == 1 and isinstance(column.type, Integer):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'),"
                        f' coalesce((SELECT max("{column.name}") FROM "{table.name}"), 0) + 1, false)'
                    )
                )


def verify_copy(source: Engine, target: Engine) -> list[VerifiedCount]:
    """Counts read on both sides: rows per table, documents and chunks per collection, and the number of
    sampled vectors that are equal value for value (of those sampled)."""
    counts: list[VerifiedCount] = []
    with source.connect() as src, target.connect() as dst:
        for table in metadata.sorted_tables:
            query = select(func.count()).select_from(table)
            if table is meta:
                query = query.where(meta.c.key != _COPY_SOURCE)
            counts.append(
                VerifiedCount(
                    f"{table.name} rows", src.execute(query).scalar_one(), dst.execute(query).scalar_one()
                )
            )
        for table in (documents, chunks):
            per_collection = select(table.c.collection, func.count()).group_by(table.c.collection)
            theirs: dict[str, int] = {str(name): int(n) for name, n in dst.execute(per_collection)}
            for collection, count in src.execute(per_collection):
                counts.append(
                    VerifiedCount(f"{table.name} in {collection!r}", count, theirs.get(collection, 0))
                )
        total = src.execute(select(func.count()).select_from(chunks)).scalar_one()
        step = max(1, total // _VECTOR_SAMPLE)
        sample = (
            select(chunks.c.id, chunks.c.embedding).where(chunks.c.rowid % step == 0).limit(_VECTOR_SAMPLE)
        )
        mine = dict(src.execute(sample).all())
        theirs_vectors = dict(
            dst.execute(select(chunks.c.id, chunks.c.embedding).where(chunks.c.id.in_(list(mine)))).all()
        )
        equal = sum(
            1
            for chunk_id, vector in mine.items()
            if chunk_id in theirs_vectors and np.array_equal(vector, theirs_vectors[chunk_id])
        )
        counts.append(VerifiedCount("sampled vectors equal", len(mine), equal))
    return counts
