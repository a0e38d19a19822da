"""Core commands: run, db upgrade/downgrade, seed-demo, version."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console

from config.settings import Settings

console = Console(stderr=True)
ROOT = Path(__file__).resolve().parent.parent.parent


def load_settings(**overrides: object) -> Settings:
    """Build settings once; a bad value is one clear line, not a traceback."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")  # model-level checks name their own fields
            where = f"HUIKE_{field.upper()}: " if field else ""
            console.print(f"[red]配置错误 / invalid setting[/red] {where}{msg}", soft_wrap=True)
        raise typer.Exit(2) from None


def alembic_config(settings: Settings):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "alembic"))
    cfg.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    return cfg


def register(app: typer.Typer) -> None:
    db = typer.Typer(help="Database migrations")
    app.add_typer(db, name="db")

    @app.command()
    def run(
        host: str = typer.Option(None, help="Listen address (HUIKE_HOST)"),
        port: int = typer.Option(None, help="Listen port (HUIKE_PORT)"),
        workers: int = typer.Option(None, help="Worker processes (HUIKE_WORKERS; needs PostgreSQL + Redis)"),
    ) -> None:
        """Serve Huike (web-chat, channels, console, API)."""
        from bot import procmetrics

        settings = load_settings(host=host, port=port, workers=workers)
        if not settings.is_sqlite and settings.redis_url:
            procmetrics.prepare(settings.workers, settings.data_dir)  # before the app imports prometheus_client
        from bot.server import serve

        serve(settings)

    @db.command("upgrade")
    def db_upgrade(revision: str = "head") -> None:
        """Apply migrations up to REVISION (default head)."""
        from alembic import command

        command.upgrade(alembic_config(load_settings()), revision)
        console.print(f"database upgraded to {revision}")

    @db.command("downgrade")
    def db_downgrade(revision: str = typer.Argument("-1")) -> None:
        """Revert migrations down to REVISION (default one step)."""
        from alembic import command

        command.downgrade(alembic_config(load_settings()), revision)
        console.print(f"database downgraded to {revision}")

    @app.command("seed-demo")
    def seed_demo() -> None:
        """Load the demo FAQ and admin user (idempotent)."""
        from bot.seed import DemoRefused
        from bot.seed import seed_demo as do_seed

        settings = load_settings()
        try:
            summary = asyncio.run(do_seed(settings))
        except DemoRefused as exc:
            console.print(f"[red]seed-demo refused[/red] {exc}", soft_wrap=True)
            raise typer.Exit(2) from None
        console.print(f"seeded: {summary}")

    @app.command()
    def version() -> None:
        """Print the version."""
        from importlib.metadata import version as dist_version

        typer.echo(f"huike {dist_version('huike')}")
