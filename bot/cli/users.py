"""`huike user …`: staff accounts from the command line (the first admin, password resets, unlocks)."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.table import Table

from bot.cli.core import load_settings
from models import Role, User, UserCreate, UserUpdate

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    users = typer.Typer(help="Staff users (admins, supervisors, agents)", no_args_is_help=True)
    app.add_typer(users, name="user")

    @users.command("create")
    def create(
        username: str = typer.Option(..., "--username", "-u", help="Login name (2-32 characters)"),
        role: Role = typer.Option(Role.AGENT, "--role", "-r", help="admin | supervisor | agent"),
        display_name: str = typer.Option("", "--display-name", help="Name shown in the console"),
        skills: str = typer.Option("", "--skills", help="Skill groups, comma-separated (e.g. 售后,物流)"),
        password: str = typer.Option(
            None, "--password", "-p", help="At least 8 characters; prompted (hidden) when omitted"
        ),
    ) -> None:
        """Create a staff user, e.g. the first admin: huike user create --username admin --role admin"""
        if password is None:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        try:
            data = UserCreate(username=username, role=role, display_name=display_name, password=password, skills=skills)
        except ValueError as exc:
            console.print(f"[red]invalid user:[/red] {_first_error(exc)}")
            raise typer.Exit(2) from None
        _refuse_default(password)
        user_id = asyncio.run(_create(data))
        console.print(f"created {role.value} [bold]{username}[/bold] (id {user_id})")

    @users.command("set-password")
    def set_password(
        username: str = typer.Option(..., "--username", "-u"),
        password: str = typer.Option(None, "--password", "-p", help="Prompted (hidden) when omitted"),
    ) -> None:
        """Reset a password (also lifts a lockout and signs the user out everywhere)."""
        if password is None:
            password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
        try:
            data = UserUpdate(password=password)
        except ValueError as exc:
            console.print(f"[red]invalid password:[/red] {_first_error(exc)}")
            raise typer.Exit(2) from None
        _refuse_default(password)
        asyncio.run(_update(username, data))
        console.print(f"password of [bold]{username}[/bold] changed")

    @users.command("update")
    def update(
        username: str = typer.Option(..., "--username", "-u"),
        skills: str = typer.Option(None, "--skills", help='Skill groups, comma-separated; "" clears them'),
        role: Role = typer.Option(None, "--role", "-r", help="admin | supervisor | agent"),
        display_name: str = typer.Option(None, "--display-name"),
        max_concurrent: int = typer.Option(None, "--max-concurrent", help="Conversations at once (1-50)"),
        active: bool = typer.Option(None, "--active/--inactive", help="Enable or disable the account"),
    ) -> None:
        """Change skills, role, display name, capacity or state, e.g. huike user update -u li --skills 售后,物流"""
        try:
            data = UserUpdate(skills=skills, role=role, display_name=display_name, max_concurrent=max_concurrent,
                              active=active)  # fmt: skip
        except ValueError as exc:
            console.print(f"[red]invalid value:[/red] {_first_error(exc)}")
            raise typer.Exit(2) from None
        if not data.model_dump(exclude_none=True):
            console.print(
                "[red]nothing to change[/red]: give --skills, --role, --display-name, --max-concurrent or --active"
            )
            raise typer.Exit(2)
        asyncio.run(_update(username, data))
        console.print(f"updated [bold]{username}[/bold]")

    @users.command("unlock")
    def unlock(username: str = typer.Option(..., "--username", "-u")) -> None:
        """Lift the login throttle of a user (kept in Redis; without Redis it lives in the server process:
        use the admin page's unlock, or wait it out)."""
        if not asyncio.run(_unlock(username)):
            console.print("no HUIKE_REDIS_URL: the throttle is in the server process; unlock on the admin page")
            raise typer.Exit(1)
        console.print(f"login throttle of [bold]{username}[/bold] lifted")

    @users.command("list")
    def list_users() -> None:
        """Staff users with role and state."""
        rows = asyncio.run(_list())
        table = Table("id", "username", "role", "skills", "active", "locked until")
        for row in rows:
            active = "yes" if row.active else "no"
            table.add_row(str(row.id), row.username, row.role, row.skills, active, str(row.locked_until or ""))
        Console().print(table)


def _refuse_default(password: str) -> None:
    """In production a published default password could never sign in (bot.web.auth): refuse it here."""
    settings = load_settings()
    if settings.is_production and settings.is_default_password(password):
        console.print("[red]invalid password:[/red] a published default password is refused in production")
        raise typer.Exit(2)


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
    return str(exc)


async def _create(data: UserCreate) -> int:
    from scrm.audit import Actor
    from scrm.db import make_engine, make_session_factory, transaction
    from scrm.errors import DomainError
    from scrm.users import create_user

    engine = make_engine(load_settings().database_url)
    try:
        async with transaction(make_session_factory(engine)) as session:
            user = await create_user(session, data=data, actor=Actor.system("cli"))
            assert user.id is not None
            return user.id
    except DomainError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    finally:
        await engine.dispose()


async def _update(username: str, data: UserUpdate) -> None:
    from sqlmodel import col, delete, select

    from models import UserSession
    from scrm.audit import Actor
    from scrm.db import make_engine, make_session_factory, transaction
    from scrm.users import update_user

    engine = make_engine(load_settings().database_url)
    try:
        async with transaction(make_session_factory(engine)) as session:
            user = (await session.exec(select(User).where(User.username == username))).first()
            if user is None or user.id is None:
                console.print(f"[red]no user {username}[/red]")
                raise typer.Exit(1)
            _user, end_sessions = await update_user(session, user_id=user.id, data=data, actor=Actor.system("cli"))
            if end_sessions:  # password, role or active changed; new skills need no new login
                await session.exec(delete(UserSession).where(col(UserSession.user_id) == user.id))  # type: ignore[call-overload]
    finally:
        await engine.dispose()


async def _unlock(username: str) -> bool:
    from redis.asyncio import Redis

    from bot.web.auth import throttle_prefix
    from bot.web.ratelimit import Counters

    settings = load_settings()
    if not settings.redis_url:
        return False
    redis = Redis.from_url(settings.redis_url, socket_timeout=5)
    try:
        await Counters(redis, settings.redis_namespace).forget(throttle_prefix(username))
    finally:
        await redis.aclose()
    return True


async def _list() -> list[User]:
    from sqlmodel import col, select

    from scrm.db import make_engine, make_session_factory

    engine = make_engine(load_settings().database_url)
    try:
        async with make_session_factory(engine)() as session:
            return list((await session.exec(select(User).order_by(col(User.id)))).all())
    finally:
        await engine.dispose()
