"""Statistics over entries: per person, and counts grouped by result, source, hour or weekday.

The aggregate follows LUNA's ``/events/stats`` answer shape: ``{"fields": [...], "stats": [[...]]}``
where each row holds the group values followed by the count. Hours and weekdays are UTC (stored
with each entry at write time, so SQLite and PostgreSQL group them the same way).
"""
from __future__ import annotations

import datetime
from typing import Any

import sqlalchemy as sa

from .entries import EntryFilter
from .errors import NotFound
from .params import from_ms
from .storage import Database, entries, persons

__all__ = ["GROUPS", "DAYS", "person_stats", "aggregate", "DEFAULT_PERIOD"]

#: group_by names -> entry columns
GROUPS = {"result": entries.c.result, "source": entries.c.source_id, "hour": entries.c.hour,
          "day_of_week": entries.c.dow}
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
#: the period of an aggregate without date_from and date_to (as LUNA: the last month)
DEFAULT_PERIOD = datetime.timedelta(days=30)


async def person_stats(db: Database, pid: str) -> dict[str, Any]:
    """Counts by result and by source, first and last seen, of one person's entries.

    A person deleted since still has statistics while entries name them; a pid no person and
    no entry ever had is :class:`NotFound`.
    """
    c = entries.c
    async with db.connect() as conn:
        by_result = (await conn.execute(sa.select(c.result, sa.func.count()).where(c.pid == pid)
                                        .group_by(c.result))).all()
        by_source = (await conn.execute(sa.select(c.source_id, sa.func.count())
                                        .where(c.pid == pid).group_by(c.source_id))).all()
        first, last = (await conn.execute(sa.select(sa.func.min(c.ts_ms), sa.func.max(c.ts_ms))
                                          .where(c.pid == pid))).one()
        exists = (await conn.execute(sa.select(persons.c.pid).where(persons.c.pid == pid))
                  ).first() is not None
    if not exists and not by_result:
        raise NotFound(f"person {pid} not found", param="pid", value=pid)
    return {
        "pid": pid, "exists": exists,
        "total": sum(n for _, n in by_result),
        "by_result": {r: n for r, n in sorted(by_result)},
        "by_source": [{"source_id": s, "count": n} for s, n in sorted(by_source)],
        "first_seen": None if first is None else from_ms(first),
        "last_seen": None if last is None else from_ms(last),
    }


async def aggregate(db: Database, f: EntryFilter, group_by: list[str]) -> dict[str, Any]:
    """Entry counts matching ``f``, grouped by ``group_by`` (in order), largest groups last.

    ``f`` must carry the period (the handler fills in the default one).
    """
    cols = [GROUPS[name].label(name) for name in group_by]
    count = sa.func.count().label("count")
    stmt = sa.select(*cols, count).where(*f.where())
    if cols:
        stmt = stmt.group_by(*cols).order_by(*cols)
    async with db.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    stats = []
    for row in rows:
        values = list(row)
        for i, name in enumerate(group_by):
            if name == "day_of_week":
                values[i] = DAYS[int(values[i])]
        stats.append(values)
    period = {"date_from": None if f.date_from is None else f.date_from.isoformat(),
              "date_to": None if f.date_to is None else f.date_to.isoformat()}
    return {"fields": [*group_by, "count"], "stats": stats, "period": period}

