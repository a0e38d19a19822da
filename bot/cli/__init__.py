"""The `huike` command line: one module per area, each adding its commands in `register(app)`."""

from __future__ import annotations

import typer

from bot.cli import core, insight, nlu, scrm, tickets, users, wechat

app = typer.Typer(no_args_is_help=True, add_completion=False, help="慧客 Huike: customer service bot + SCRM")
for area in (core, nlu, wechat, tickets, scrm, users, insight):
    area.register(app)


def main() -> None:
    app()
