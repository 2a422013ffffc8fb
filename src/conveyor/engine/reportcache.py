"""Health reports read once: an engine keeps, per environment and release version, the
reports it has read as integer columns, and on each later look reads only those that
arrived since (`id` above the last one read). A pass's cost no longer grows with the
environment's history, only with what was reported since the last look.

Reports are appended in the order received, as the full read orders them, and the time
filter (`time <= now`) is applied on the held columns, so the evaluation sees exactly what a
full read would. On SQLite a report's id is given under the database's write lock, so no
report with a lower id can appear after a higher one was read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.engine.health import columns_of, nodes_of, packed, read_integers
from conveyor.health.columnar import I64, Columns, us
from conveyor.store.tables import HealthReportRow


@dataclass
class _Held:
    last_id: int = 0
    time_us: I64 = field(default_factory=lambda: np.empty(0, np.int64))
    packed: I64 = field(default_factory=lambda: np.empty(0, np.int64))


class ReportCache:
    """What an engine has read of each (environment, version)'s reports; the least
    recently used are dropped past `limit` keys."""

    def __init__(self, limit: int = 64) -> None:
        self._held: OrderedDict[tuple[str, str], _Held] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()  # the simulator and probes may share an engine
        self.rows_read = 0  # reports read from the store, in all

    def columns(self, session: Session, environment: str, version: str, now: datetime) -> Columns:
        key = (environment, version)
        with self._lock:
            held = self._held.pop(key, None) or _Held()
            self._held[key] = held
            while len(self._held) > self._limit:
                self._held.popitem(last=False)
        if session.autoflush:
            session.flush()  # as an ORM query would: reports added in this session count
        r = HealthReportRow
        q = (
            select(r.id, r.time_us, packed(version))
            .where(r.environment == environment, r.id > held.last_id)
            .order_by(r.id)
        )
        rows = read_integers(session, q, 3)
        if len(rows):
            self.rows_read += len(rows) // 3
            held.last_id = int(rows[-3])
            held.time_us = np.concatenate([held.time_us, rows[1::3]])
            held.packed = np.concatenate([held.packed, rows[2::3]])
        upto = held.time_us <= us(now)
        return columns_of(held.time_us[upto], held.packed[upto], nodes_of(session, environment))
