"""Bearer tokens: a JSON file of hashed tokens, written by ``twin tokens`` and read by the
server.

Why this way:

- **Only a hash is stored.** A token is 32 random bytes (``secrets.token_urlsafe``) behind a
  ``twin_`` prefix; the file keeps its SHA-256. A stolen file grants nothing. A salted slow
  hash is not needed: the token has 256 bits of entropy, so there is nothing to guess.
- **Constant-time comparison** of the hashes (``hmac.compare_digest``), after a lookup by
  hash (the lookup learns nothing an attacker could steer: they do not control the hash).
- **Scopes**: ``read`` and ``write``; write implies read.
- **Revocation takes effect at once**: the server re-reads the file when its modification
  time or size changes (checked at most once a second), so ``twin tokens revoke`` needs no
  restart.
- The file is replaced atomically (write, fsync, rename) under an exclusive lock, readable by
  its owner only; no token, hash or header is ever logged.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from twin.errors import InputError
from twin.io import validation_error
from twin.safeload import read_json

Scope = Literal["read", "write"]
PREFIX = "twin_"


class TokenEntry(BaseModel):
    """One token as the file keeps it: its id (shown by ``list``, used by ``revoke``), the
    SHA-256 of the secret, its scope, and when it was created, expires and was revoked."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(min_length=1, max_length=64)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scope: Scope
    name: str = Field(default="", max_length=200)
    created: datetime
    expires: datetime | None = None
    revoked: datetime | None = None

    @field_validator("created", "expires", "revoked")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        """A time written without a zone (by hand) is UTC."""
        return v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v

    def state(self, now: datetime) -> str:
        """``active``, ``revoked`` or ``expired`` at ``now``."""
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and now >= self.expires:
            return "expired"
        return "active"


class TokenFile(BaseModel):
    """The tokens file: ``{"tokens": [...]}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    tokens: list[TokenEntry] = Field(default_factory=list)


def digest(token: str) -> str:
    """The SHA-256 (hex) kept for a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load(path: Path) -> TokenFile:
    """Read a tokens file; a missing file has no tokens, a bad one is a one-line error."""
    if not path.exists():
        return TokenFile()
    data, text = read_json(path, "document")
    try:
        return TokenFile.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, str(path), text, data) from None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside the file, so two ``twin tokens`` commands do not lose each
    other's change."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise InputError(f"cannot lock the tokens file: {exc.strerror}", source=str(path)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _save(path: Path, tokens: TokenFile) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    text = tokens.model_dump_json(indent=2) + "\n"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise InputError(f"cannot write: {exc.strerror}", source=str(path)) from None


def create(
    path: Path, scope: Scope, *, expires_days: float | None = None, name: str = ""
) -> tuple[str, TokenEntry]:
    """Make a token, keep its hash in the file, and return the token (shown once) with its
    entry."""
    if expires_days is not None and not (0 < expires_days <= 36500):
        raise InputError("expected a number of days in (0, 36500]", source="--expires")
    now = datetime.now(UTC)
    token = PREFIX + secrets.token_urlsafe(32)
    entry = TokenEntry(
        id=secrets.token_hex(6),
        sha256=digest(token),
        scope=scope,
        name=name,
        created=now,
        expires=None if expires_days is None else now + timedelta(days=expires_days),
    )
    with _locked(path):
        current = load(path)
        _save(path, TokenFile(tokens=[*current.tokens, entry]))
    return token, entry


def revoke(path: Path, token_id: str) -> TokenEntry:
    """Mark a token revoked (its entry stays, so ``list`` shows when)."""
    with _locked(path):
        current = load(path)
        found = [t for t in current.tokens if t.id == token_id]
        if not found:
            raise InputError(f"no token with id {token_id!r}", source=str(path))
        entry = found[0]
        if entry.revoked is None:
            entry = entry.model_copy(update={"revoked": datetime.now(UTC)})
        _save(
            path,
            TokenFile(tokens=[entry if t.id == token_id else t for t in current.tokens]),
        )
    return entry


@dataclass(frozen=True)
class Caller:
    """Who is calling: the token's id (never the token) and its scope."""

    token_id: str
    scope: Scope

    def may(self, need: Scope) -> bool:
        return need == "read" or self.scope == "write"


class Authenticator:
    """Checks bearer tokens against the file, re-reading it when it changes."""

    def __init__(self, path: Path, *, recheck_seconds: float = 1.0) -> None:
        self.path = path
        self.recheck = recheck_seconds
        self._stamp: tuple[int, int] | None = None
        self._checked = -1e9
        self._by_hash: dict[str, TokenEntry] = {}
        self._refresh(force=True)

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self.recheck:
            return
        self._checked = now
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        if stamp == self._stamp:
            return
        try:
            tokens = load(self.path)
        except InputError:
            if force:
                raise
            return  # a file being rewritten by hand: keep the last good copy
        self._by_hash = {t.sha256: t for t in tokens.tokens}
        self._stamp = stamp

    def check(self, header: str | None) -> Caller | Literal["missing", "invalid"]:
        """The caller for an ``Authorization`` header, or why there is none."""
        if not header:
            return "missing"
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "invalid"
        self._refresh()
        h = digest(token.strip())
        entry = self._by_hash.get(h)
        if entry is None or not hmac.compare_digest(entry.sha256, h):
            return "invalid"
        if entry.state(datetime.now(UTC)) != "active":
            return "invalid"
        return Caller(entry.id, entry.scope)


def describe(entry: TokenEntry, now: datetime | None = None) -> dict[str, Any]:
    """An entry as ``twin tokens list`` shows it (no hash)."""
    now = now or datetime.now(UTC)
    return {
        "id": entry.id,
        "name": entry.name,
        "scope": entry.scope,
        "state": entry.state(now),
        "created": entry.created.isoformat(timespec="seconds"),
        "expires": entry.expires.isoformat(timespec="seconds") if entry.expires else None,
        "revoked": entry.revoked.isoformat(timespec="seconds") if entry.revoked else None,
    }


__all__ = [
    "Authenticator",
    "Caller",
    "Scope",
    "TokenEntry",
    "TokenFile",
    "create",
    "describe",
    "digest",
    "load",
    "revoke",
]
