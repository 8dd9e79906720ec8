"""The failure-mode database: campaigns, runs, failure modes, chaos results, mitigations.

SQLAlchemy 2.x over SQLite (an embedded file, the default) or PostgreSQL (by URL). Why
these rules:

- **Every write is one transaction**, so a process killed mid-campaign leaves whole rows or
  none: SQLite's journal and PostgreSQL's WAL roll back what was not committed.
- **Natural keys with unique constraints** make every write idempotent: a run is keyed by
  (campaign, run id), a failure mode by its trigger (topology, policy, fault kind, target,
  load), a chaos result by (format, test id, start instant in UTC), a mitigation by (mode,
  policy). Writing the same thing twice is a no-op, or an update when the content changed,
  never a second row; resuming a campaign or re-ingesting a file is always safe. Every
  insert is ``INSERT ... ON CONFLICT DO NOTHING``, so another process writing the same key
  at the same moment is "already there", never an integrity error.
- **Several processes may share one database** (:mod:`twin.store.connect`): tables are
  created under a lock, SQLite writers queue (``BEGIN IMMEDIATE``, a busy timeout) and
  PostgreSQL waits are bounded.
- **What is stored is checked first** (:mod:`twin.store.checks`), so SQLite and PostgreSQL
  accept and refuse the same chaos results, each refusal one located line.
- The store takes plain dicts (rows as :mod:`twin.campaign` writes them), so it depends on
  nothing above the documents.
"""

from sqlalchemy.exc import SQLAlchemyError

from twin.store import documents  # its tables join Base before any create_all
from twin.store.chaos import parse_chaos, parse_chaos_file
from twin.store.database import DEFAULT_FILE, IngestReport, Store, check_record, resolve_url
from twin.store.records import chaos_kind
from twin.store.schema import Base

__all__ = [
    "DEFAULT_FILE",
    "Base",
    "IngestReport",
    "SQLAlchemyError",
    "Store",
    "chaos_kind",
    "check_record",
    "documents",
    "parse_chaos",
    "parse_chaos_file",
    "resolve_url",
]
