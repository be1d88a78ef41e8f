"""The `gridmap db` and `gridmap user` commands: the schema, accounts and their API keys."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from api.console import JsonOption, Output, QuietOption, user_errors

db_app = typer.Typer(help="The database: create or upgrade its schema.", no_args_is_help=True)
user_app = typer.Typer(help="Accounts 账户: add, change password, disable, API keys.",
                       no_args_is_help=True)
#: Messages of the commands that report no figures (stderr: stdout is for results).
messages = Output()

DatabaseOption = Annotated[
    str | None,
    typer.Option("--database-url", envvar="GRIDMAP_DATABASE_URL",
                 help="SQLAlchemy URL: sqlite:///file.sqlite (SpatiaLite) or "
                      "postgresql+psycopg://user@host/db (PostGIS)."),
]


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseOption = None) -> None:
    """Create the tables, or bring them up to date (Alembic migrations)."""
    from gis.database import make_engine, upgrade

    with user_errors():
        engine = make_engine(database_url)
        upgrade(engine)
        messages.say(f"schema up to date: {engine.url.render_as_string(hide_password=True)}")


PasswordStdin = Annotated[bool, typer.Option(
    "--password-stdin", help="Read the password from standard input (for scripts) instead of "
                             "asking for it.")]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt("密码 password", hide_input=True, confirmation_prompt=True))


def _account_engine(database_url: str | None) -> Any:
    from gis.database import make_engine, upgrade

    engine = make_engine(database_url)
    upgrade(engine)
    return engine


@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="Sign-in name (letters, digits, . _ @ -).")],
    role: Annotated[str, typer.Option(help="admin, planner, operator, grid_worker, reporter "
                                           "or viewer.")],
    area: Annotated[str, typer.Option(help="Area codes the account is bound to, comma-"
                                           "separated (e.g. 440111001 for a town, grid codes "
                                           "for a grid worker), or '*' for every area.")],
    name: Annotated[str | None, typer.Option(help="Display name, e.g. 王小明.")] = None,
    password_stdin: PasswordStdin = False,
    database_url: DatabaseOption = None,
) -> None:
    """Create an account (the first one: an administrator with --area '*')."""
    from gis.accounts import add_account

    with user_errors():
        engine = _account_engine(database_url)
        account = add_account(engine, username, _password(password_stdin), role,
                              area, name)
        messages.say(f"账户 account {account.username}: {account.role}, areas "
                     f"{','.join(account.areas)}")


@user_app.command("passwd")
def user_passwd(username: str, password_stdin: PasswordStdin = False,
                database_url: DatabaseOption = None) -> None:
    """Set a new password (tokens issued before stop working)."""
    from gis.accounts import change_account

    with user_errors():
        change_account(_account_engine(database_url), username,
                       password=_password(password_stdin))
        messages.say(f"password changed for {username}")


@user_app.command("disable")
def user_disable(username: str, database_url: DatabaseOption = None) -> None:
    """Disable an account: its tokens and API keys stop working within seconds."""
    from gis.accounts import change_account

    with user_errors():
        change_account(_account_engine(database_url), username, disabled=True)
        messages.say(f"{username} disabled 已停用")


@user_app.command("enable")
def user_enable(username: str, database_url: DatabaseOption = None) -> None:
    """Enable a disabled account again."""
    from gis.accounts import change_account

    with user_errors():
        change_account(_account_engine(database_url), username, disabled=False)
        messages.say(f"{username} enabled 已启用")


@user_app.command("list")
def user_list(database_url: DatabaseOption = None, quiet: QuietOption = False,
              as_json: JsonOption = False) -> None:
    """Every account with its role, areas and state."""
    from gis.accounts import list_accounts

    with user_errors():
        table = Table("username", "name", "role", "areas", "state")
        accounts = list_accounts(_account_engine(database_url))
        for a in accounts:
            table.add_row(a.username, a.display_name or "", a.role, ",".join(a.areas),
                          "disabled 停用" if a.disabled else "active")
        Output(quiet=quiet, as_json=as_json).result(
            {"accounts": [{"username": a.username, "name": a.display_name, "role": a.role,
                           "areas": list(a.areas), "disabled": a.disabled}
                          for a in accounts]}, table)


@user_app.command("key")
def user_key(
    username: str,
    name: Annotated[str, typer.Option(help="What the key is for, e.g. hotline-integration.")],
    revoke: Annotated[bool, typer.Option("--revoke", help="Revoke the keys of this name "
                                                           "instead.")] = False,
    database_url: DatabaseOption = None,
) -> None:
    """Make a long-lived API key (sent as X-API-Key; printed once), or revoke keys."""
    from gis.accounts import create_api_key, revoke_api_keys

    with user_errors():
        engine = _account_engine(database_url)
        if revoke:
            messages.say(f"{revoke_api_keys(engine, username, name)} key(s) revoked")
        else:
            typer.echo(create_api_key(engine, username, name))
