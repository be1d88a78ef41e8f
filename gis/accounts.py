"""Accounts, API keys, the audit log and the service's secrets in the store."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import (
    ColumnElement,
    Engine,
    case,
    delete,
    false,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from gis.codes import starts_with
from gis.errors import GridmapError, NotFound
from gis.models.accounts import (
    ROLES,
    Account,
    ApiKey,
    AuditEntry,
    RevokedToken,
    ServiceSecret,
    Throttle,
)
from gis.models.base import iso, utcnow
from gis.paging import Page, Paged, read_page

ACCOUNTS = Account.__table__
KEYS = ApiKey.__table__
AUDIT = AuditEntry.__table__
SECRETS = ServiceSecret.__table__
THROTTLE = Throttle.__table__
REVOKED = RevokedToken.__table__
#: Area codes: a district (6 digits), town/street (9), village/community (12) or grid (15),
#: or ``*``, every area. Other lengths name nothing in the code scheme (and a shorter prefix
#: would reach into other districts).
_AREA = re.compile(r"^(\*|\d{6}|\d{9}|\d{12}|\d{15})$")
_USERNAME = re.compile(r"^[\w.@-]{1,60}$")
#: argon2id with the library's defaults (RFC 9106's second recommendation: 64 MiB, t=3).
_HASHER = PasswordHasher()
#: Shortest password accepted.
MIN_PASSWORD = 10


class AccountError(GridmapError):
    """An account cannot be made or changed as asked (the message says why)."""

    code = "invalid-account"


@dataclass(frozen=True)
class AccountInfo:
    """An account as the service uses it: no password hash."""

    id: int
    username: str
    display_name: str | None
    role: str
    areas: tuple[str, ...]
    disabled: bool
    changed_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"username": self.username, "display_name": self.display_name,
                "role": self.role, "areas": list(self.areas), "disabled": self.disabled}


def parse_areas(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Area codes from ``440111001,440111002`` (or a list), checked; ``*`` alone is all."""
    items = text.split(",") if isinstance(text, str) else list(text)
    codes = tuple(dict.fromkeys(c.strip() for c in items if c.strip()))
    if not codes:
        raise AccountError("an account needs at least one area code (e.g. 440111 for a "
                           "district, 440111001 for a town) or * for every area")
    bad = [c for c in codes if not _AREA.match(c)]
    if bad:
        raise AccountError(f"not an area code: {', '.join(bad)}; use the 6 digits of a "
                           "district, 9 of a town/street, 12 of a village/community or 15 "
                           "of a grid, or *")
    if "*" in codes and len(codes) > 1:
        raise AccountError("* already covers every area: give it alone")
    return codes


def within_areas(column: Any, areas: tuple[str, ...] | None) -> ColumnElement[bool] | None:
    """A filter keeping rows whose code (grid, village, ...) lies within one of the areas;
    None when there is nothing to filter (no areas given, or ``*``)."""
    if areas is None or "*" in areas:
        return None
    return or_(false(), *[starts_with(column, a) for a in areas])


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password needs at least {MIN_PASSWORD} characters")


def _info(row: Any) -> AccountInfo:
    changed = row.changed_at
    if changed.tzinfo is None:  # SQLite returns naive UTC
        changed = changed.replace(tzinfo=utcnow().tzinfo)
    return AccountInfo(id=row.id, username=row.username, display_name=row.display_name,
                       role=row.role, areas=tuple(row.areas.split(",")),
                       disabled=bool(row.disabled), changed_at=changed)


def add_account(engine: Engine, username: str, password: str, role: str,
                areas: str | list[str] | tuple[str, ...],
                display_name: str | None = None) -> AccountInfo:
    """Create an account; its password is stored as an argon2id hash."""
    if not _USERNAME.match(username):
        raise AccountError("a username is 1-60 letters, digits, or . _ @ -")
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    codes = parse_areas(areas)
    _check_password(password)
    now = utcnow()
    try:
        with engine.begin() as conn:
            conn.execute(insert(Account).values(
                username=username, display_name=display_name, role=role,
                areas=",".join(codes), password_hash=_HASHER.hash(password), disabled=False,
                created_at=now, changed_at=now))
    except IntegrityError as exc:
        raise AccountError(f"an account {username!r} exists already") from exc
    return get_account(engine, username)


def get_account(engine: Engine, username: str) -> AccountInfo:
    with engine.connect() as conn:
        row = conn.execute(select(ACCOUNTS).where(ACCOUNTS.c.username == username)).first()
    if row is None:
        raise NotFound(f"no account {username!r}")
    return _info(row)


def list_accounts(engine: Engine) -> list[AccountInfo]:
    return accounts_page(engine, None).items


def accounts_page(engine: Engine, page: Page | None) -> Paged[AccountInfo]:
    """Accounts by username, a page of them."""
    with engine.connect() as conn:
        return read_page(conn, select(ACCOUNTS).order_by(ACCOUNTS.c.username), page).map(_info)


def change_account(engine: Engine, username: str, *, password: str | None = None,
                   disabled: bool | None = None, role: str | None = None,
                   areas: str | list[str] | None = None) -> AccountInfo:
    """Change a password, the state, the role or the areas. Tokens issued before stop
    working (``changed_at`` moves)."""
    values: dict[str, Any] = {"changed_at": utcnow()}
    if password is not None:
        _check_password(password)
        values["password_hash"] = _HASHER.hash(password)
    if disabled is not None:
        values["disabled"] = disabled
    if role is not None:
        if role not in ROLES:
            raise AccountError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        values["role"] = role
    if areas is not None:
        values["areas"] = ",".join(parse_areas(areas))
    with engine.begin() as conn:
        done = conn.execute(update(Account).where(ACCOUNTS.c.username == username)
                            .values(**values))
        if done.rowcount == 0:
            raise NotFound(f"no account {username!r}")
    return get_account(engine, username)


def verify_password(engine: Engine, username: str, password: str) -> AccountInfo | None:
    """The account when the password is right and the account enabled, else None. An unknown
    user costs the same hashing as a wrong password (no timing hint), and so does a name no
    account can have (which is not even looked up: it may hold a NUL, refused by PostgreSQL)."""
    row = None
    if _USERNAME.match(username):
        with engine.connect() as conn:
            row = conn.execute(select(ACCOUNTS).where(ACCOUNTS.c.username == username)
                               ).first()
    stored = row.password_hash if row is not None else _DUMMY_HASH
    try:
        _HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if row is None or row.disabled:
        return None
    if _HASHER.check_needs_rehash(stored):
        with engine.begin() as conn:
            conn.execute(update(Account).where(ACCOUNTS.c.id == row.id)
                         .values(password_hash=_HASHER.hash(password)))
    return _info(row)


_DUMMY_HASH = _HASHER.hash("not a password of anyone")


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(engine: Engine, username: str, name: str) -> str:
    """A new API key for the account; the key is shown this once (only its hash is kept)."""
    account = get_account(engine, username)
    key = "gm_" + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(insert(ApiKey).values(account_id=account.id, name=name[:100],
                                         key_hash=_key_hash(key), created_at=utcnow()))
    return key


def revoke_api_keys(engine: Engine, username: str, name: str | None = None) -> int:
    """Revoke the account's keys (all, or those of one name); returns how many."""
    account = get_account(engine, username)
    query = update(ApiKey).where(KEYS.c.account_id == account.id,
                                 KEYS.c.revoked_at.is_(None))
    if name is not None:
        query = query.where(KEYS.c.name == name)
    with engine.begin() as conn:
        return int(conn.execute(query.values(revoked_at=utcnow())).rowcount)


def list_api_keys(engine: Engine, username: str) -> list[dict[str, Any]]:
    """The account's keys (id, name, made, revoked), newest first; never the keys."""
    return api_keys_page(engine, username, None).items


def api_keys_page(engine: Engine, username: str, page: Page | None
                  ) -> Paged[dict[str, Any]]:
    """A page of the account's keys, newest first (NotFound for no such account)."""
    account = get_account(engine, username)
    with engine.connect() as conn:
        found = read_page(conn, select(KEYS.c.id, KEYS.c.name, KEYS.c.created_at,
                                       KEYS.c.revoked_at)
                          .where(KEYS.c.account_id == account.id).order_by(KEYS.c.id.desc()),
                          page)
    return found.map(lambda r: {**r._mapping, "created_at": iso(r.created_at),
                                "revoked_at": iso(r.revoked_at)})


def revoke_api_key(engine: Engine, username: str, key_id: int) -> bool:
    """Revoke one key of the account; False when it was revoked already. NotFound for a
    key of another account."""
    account = get_account(engine, username)
    with engine.begin() as conn:
        row = conn.execute(select(KEYS.c.revoked_at).where(
            KEYS.c.id == key_id, KEYS.c.account_id == account.id)).first()
        if row is None:
            raise NotFound(f"no key {key_id} of account {username}")
        if row.revoked_at is not None:
            return False
        conn.execute(update(ApiKey).where(KEYS.c.id == key_id)
                     .values(revoked_at=utcnow()))
    return True


def account_of_key(engine: Engine, key: str) -> AccountInfo | None:
    """The enabled account an unrevoked API key belongs to, else None."""
    with engine.connect() as conn:
        row = conn.execute(select(ACCOUNTS).join(KEYS, KEYS.c.account_id == ACCOUNTS.c.id)
                           .where(KEYS.c.key_hash == _key_hash(key),
                                  KEYS.c.revoked_at.is_(None))).first()
    if row is None or row.disabled:
        return None
    return _info(row)


def service_secret(engine: Engine, name: str) -> str:
    """A secret of the service, made on first use and the same for every process."""
    with engine.connect() as conn:
        found = conn.execute(select(SECRETS.c.value).where(SECRETS.c.name == name)).first()
    if found is not None:
        return str(found[0])
    try:
        with engine.begin() as conn:
            conn.execute(insert(ServiceSecret).values(
                name=name, value=secrets.token_urlsafe(48)))
    except IntegrityError:
        pass  # another process made it first: use theirs
    with engine.connect() as conn:
        return str(conn.execute(select(SECRETS.c.value).where(SECRETS.c.name == name))
                   .scalar_one())


def write_audit(engine: Engine, entries: list[dict[str, Any]]) -> None:
    """Append audit entries (at, username, role, action, method, path, status, detail)."""
    if entries:
        with engine.begin() as conn:
            conn.execute(insert(AuditEntry), entries)


def read_audit(engine: Engine, *, username: str | None = None, since: datetime | None = None,
               until: datetime | None = None, action: str | None = None,
               path: str | None = None, status: int | None = None,
               limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """Audit entries newest first; filters: account, time range [since, until), action,
    path prefix, status."""
    return audit_page(engine, Page(limit, offset), username=username, since=since,
                      until=until, action=action, path=path, status=status).items


def audit_page(engine: Engine, page: Page | None, *, username: str | None = None,
               since: datetime | None = None, until: datetime | None = None,
               action: str | None = None, path: str | None = None,
               status: int | None = None) -> Paged[dict[str, Any]]:
    """A page of :func:`read_audit`'s entries (no total: the log grows without bound)."""
    query = select(AUDIT).order_by(AUDIT.c.id.desc())
    if username is not None:
        query = query.where(AUDIT.c.username == username)
    if since is not None:
        query = query.where(AUDIT.c.at >= since)
    if until is not None:
        query = query.where(AUDIT.c.at < until)
    if action is not None:
        query = query.where(AUDIT.c.action == action)
    if path is not None:
        query = query.where(starts_with(AUDIT.c.path, path))
    if status is not None:
        query = query.where(AUDIT.c.status == status)
    with engine.connect() as conn:
        found = read_page(conn, query, page, count=False)
    return found.map(lambda r: {**r._mapping, "at": iso(r.at)})


# ------------------------------------------------------------------------------------------
# Counters shared by every server process (sign-in throttling) and revoked tokens


def _upsert(engine: Engine) -> Any:
    return postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert


def throttle_hit(engine: Engine, key: str, window_s: float, now: datetime,
                 amount: int = 1) -> tuple[int, datetime]:
    """Count ``amount`` hits on ``key`` in its fixed window of ``window_s`` seconds (a new
    window starts when the last one is over); returns the hits in the window and when the
    window started. One statement (an upsert), atomic on both backends."""
    cutoff = now - timedelta(seconds=window_s)
    expired = THROTTLE.c.window_start <= cutoff
    statement = _upsert(engine)(THROTTLE).values(key=key, window_start=now, hits=amount)
    statement = statement.on_conflict_do_update(
        index_elements=[THROTTLE.c.key],
        set_={"hits": case((expired, amount), else_=THROTTLE.c.hits + amount),
              "window_start": case((expired, now), else_=THROTTLE.c.window_start)},
    ).returning(THROTTLE.c.hits, THROTTLE.c.window_start)
    with engine.begin() as conn:
        hits, start = conn.execute(statement).one()
    if start.tzinfo is None:  # SQLite returns naive UTC
        start = start.replace(tzinfo=now.tzinfo)
    return int(hits), start


def throttle_clear(engine: Engine, key: str) -> None:
    """Forget a key's hits (and sweep counters idle for a day)."""
    with engine.begin() as conn:
        conn.execute(delete(Throttle).where(or_(
            THROTTLE.c.key == key,
            THROTTLE.c.window_start < utcnow() - timedelta(days=1))))


def revoke_token(engine: Engine, jti: str, expires_at: datetime) -> None:
    """Void a token (by its ``jti``) until it would expire; expired entries are swept."""
    with engine.begin() as conn:
        conn.execute(delete(RevokedToken).where(
            REVOKED.c.expires_at < utcnow()))
        conn.execute(_upsert(engine)(REVOKED).values(jti=jti, expires_at=expires_at)
                     .on_conflict_do_nothing(index_elements=[REVOKED.c.jti]))


def is_revoked(engine: Engine, jti: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(REVOKED.c.jti).where(REVOKED.c.jti == jti)).first() \
            is not None
