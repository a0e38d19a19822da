"""`huike wechat …`: push the Official Account menu, simulate WeChat callbacks against a running Huike."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import typer
import yaml
from rich.console import Console

console = Console()
ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_MENU = ROOT / "config" / "wechat_menu.yml"


def load_menu(path: Path) -> dict[str, Any]:
    menu = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    buttons = menu.get("button")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise typer.BadParameter(f"{path}: 'button' must list 1 to 3 buttons")
    for button in buttons:
        if len(button.get("sub_button") or []) > 5:
            raise typer.BadParameter(f"{path}: '{button.get('name')}' has more than 5 sub buttons")
    return {"button": buttons}


async def push_menu(menu: dict[str, Any]) -> dict[str, Any]:
    """menu/create with the shared token (Redis when configured, so a running Huike keeps its token)."""
    import aiohttp

    from bot.channels.wechat_api import WeChatClient, token_store
    from bot.cli.core import load_settings

    settings = load_settings()
    if not settings.wechat_app_id or not settings.wechat_app_secret.get_secret_value():
        console.print("[red]HUIKE_WECHAT_APP_ID / HUIKE_WECHAT_APP_SECRET are not set[/red]")
        raise typer.Exit(2)
    redis: Any = None
    if settings.redis_url:
        from redis.asyncio import Redis

        redis = Redis.from_url(settings.redis_url)
    else:
        console.print("[yellow]note: no HUIKE_REDIS_URL — this fetches its own access_token, which replaces "
                      "a running Huike's token (it refreshes once on 40001).[/yellow]")  # fmt: skip
    try:
        async with aiohttp.ClientSession() as http:
            client = WeChatClient(http, app_id=settings.wechat_app_id,
                                  secret=settings.wechat_app_secret.get_secret_value(),
                                  base_url=settings.wechat_api_base,
                                  store=token_store(redis, settings.redis_namespace))  # fmt: skip
            return await client.create_menu(menu)
    finally:
        if redis is not None:
            await redis.aclose()


def build_callback(
    *, text: str, openid: str, event: str | None, token: str, app_id: str, aes_key: str, encrypted: bool
) -> tuple[dict[str, str], bytes]:
    """(query, body) exactly as WeChat would send them for an Official Account."""
    from bot.channels.wechat_common import Cipher, render_xml, safe_xml_dict, sign

    now = str(int(time.time()))
    nonce = uuid.uuid4().hex[:10]
    fields: dict[str, str] = {"ToUserName": "gh_huike_demo", "FromUserName": openid, "CreateTime": now}
    if event:
        fields |= {"MsgType": "event", "Event": event, "EventKey": text}
    else:
        fields |= {"MsgType": "text", "Content": text, "MsgId": str(uuid.uuid4().int % 10**18)}
    xml = render_xml(fields)
    query = {"timestamp": now, "nonce": nonce, "signature": sign(token, now, nonce), "openid": openid}
    if not encrypted:
        return query, xml.encode("utf-8")
    envelope = safe_xml_dict(Cipher(token, aes_key, app_id).encrypt(xml, nonce, now))
    body = render_xml({"ToUserName": "gh_huike_demo", "Encrypt": envelope["Encrypt"]}).encode("utf-8")
    return query | {"encrypt_type": "aes", "msg_signature": envelope["MsgSignature"]}, body


async def simulate(url: str, query: dict[str, str], body: bytes) -> tuple[int, str]:
    import aiohttp

    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}?{urlencode(query)}", data=body, headers={"Content-Type": "text/xml"}) as resp,
    ):
        return resp.status, await resp.text()


def register(app: typer.Typer) -> None:
    wechat = typer.Typer(help="WeChat Official Account / WeCom tools", no_args_is_help=True)
    menu = typer.Typer(help="Official Account custom menu", no_args_is_help=True)
    wechat.add_typer(menu, name="menu")
    app.add_typer(wechat, name="wechat")

    @menu.command("push")
    def menu_push(file: Path = typer.Option(DEFAULT_MENU, help="Menu YAML (menu/create shape)")) -> None:
        """Create the Official Account menu from FILE (default config/wechat_menu.yml)."""
        result = asyncio.run(push_menu(load_menu(file)))
        console.print(f"菜单已发布 / menu pushed: {result.get('errmsg', 'ok')}")

    @wechat.command("simulate")
    def simulate_cmd(
        text: str = typer.Argument("怎么取消订单", help="Message text (or EventKey with --event)"),
        openid: str = typer.Option("o-demo-user", help="Sender openid"),
        event: str = typer.Option(None, help="Send an event instead (subscribe, unsubscribe, CLICK …)"),
        url: str = typer.Option(None, help="Callback URL (default: the demo account on HUIKE_HOST:PORT)"),
        encrypted: bool = typer.Option(False, help="Safe mode (needs HUIKE_WECHAT_AES_KEY)"),
    ) -> None:
        """Send a signed callback to a running Huike like WeChat would, and print the reply."""
        from bot.channels.wechat_common import Cipher, safe_xml_dict
        from bot.channels.wechat_oa import callback_token
        from bot.cli.core import load_settings

        settings = load_settings()
        token = callback_token(settings)
        if not token:
            console.print("[red]HUIKE_WECHAT_TOKEN is not set (the running Huike must use the same)[/red]")
            raise typer.Exit(2)
        aes_key = settings.wechat_aes_key.get_secret_value()
        if encrypted and not aes_key:
            console.print("[red]--encrypted needs HUIKE_WECHAT_AES_KEY[/red]")
            raise typer.Exit(2)
        query, body = build_callback(
            text=text,
            openid=openid,
            event=event,
            token=token,
            app_id=settings.wechat_app_id,
            aes_key=aes_key,
            encrypted=encrypted,
        )
        status, reply = asyncio.run(simulate(url or f"{settings.public_url}/channels/wechat/default", query, body))
        if encrypted and status == 200 and reply.startswith("<xml>"):
            env = safe_xml_dict(reply)
            reply = Cipher(token, aes_key, settings.wechat_app_id).decrypt(
                env["Encrypt"], env["MsgSignature"], env["TimeStamp"], env["Nonce"]
            )
        console.print(f"HTTP {status}")
        if reply.startswith("<xml>"):
            data = safe_xml_dict(reply)
            console.print(f"[bold]{data.get('MsgType')}[/bold] → {data.get('Content') or data}")
        else:
            console.print(reply)
