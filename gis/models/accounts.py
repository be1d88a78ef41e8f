"""Stored tables of access: accounts, API keys, audit log, secrets, throttles, revoked tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gis.models.base import NO_REUSE, Base, enum_type, utcnow

#: Who may do what (api/auth.py gives each role its permissions).
ROLES = ("admin", "planner", "operator", "grid_worker", "reporter", "viewer")


class Account(Base):
    """A person or an integration that signs in: a role and the areas it is bound to."""

    __tablename__ = "accounts"
    __table_args__ = NO_REUSE
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(60), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(enum_type("account_role", ROLES))
    #: Area codes (district, town, village/community or grid), comma-separated; ``*`` is
    #: every area. The account sees and acts on what lies under one of them.
    areas: Mapped[str] = mapped_column(String(400))
    password_hash: Mapped[str] = mapped_column(String(200))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: When the password, role, areas or state last changed: tokens issued before are void.
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(Base):
    """A long-lived key of an account for integrations (only its SHA-256 is stored)."""

    __tablename__ = "api_keys"
    __table_args__ = NO_REUSE
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"),
                                            index=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """Who read personal data or changed something, when, through which request."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    username: Mapped[str | None] = mapped_column(String(60), index=True)
    role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(400))
    status: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)


class ServiceSecret(Base):
    """A secret of the service made on first use (the key that signs tokens), shared by
    every server process through the store."""

    __tablename__ = "service_secrets"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class Throttle(Base):
    """A fixed-window counter shared by every server process (sign-in failures per account
    and per client address): how many hits in the window that started at ``window_start``."""

    __tablename__ = "throttle"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    hits: Mapped[int] = mapped_column(Integer)


class RevokedToken(Base):
    """A token voided before its expiry (signed out): its id, kept until it would expire."""

    __tablename__ = "revoked_tokens"
    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
