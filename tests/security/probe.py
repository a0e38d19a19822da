"""`make security`: a live `huike run` on 127.0.0.1 (SQLite in a temporary folder), probed from outside.

Sends issue 15's hostile inputs (tests/security/hostile.py), a flood of web-chat messages and wrong
passwords, an over-long request line, and sweeps every route of the app router as anonymous, agent,
supervisor and admin. Prints: requests sent, responses >= 500 (must be 0), personal data leaked (a
canary customer's phone or name in an answer to a caller who must not see it: must be 0), tracebacks
in the server log (must be 0), and how many requests were rate limited. Exits 1 when a must-be-0 is not.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.security.hostile import probes, send  # noqa: E402

HUIKE = str(ROOT / ".venv" / "bin" / "huike")
TOKEN = "probe-token"
PASSWORD = "probe-pass-" + secrets.token_hex(4)
ROLES = ("agent", "supervisor", "admin")
CANARY_PHONE, CANARY_NAME = "13987654321", "探针张三"
SKIP_FOR_STAFF = {"POST /api/v1/auth/logout", "POST /api/v1/auth/password"}  # would end the sweep's own session


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def routes() -> list[tuple[str, str]]:
    """(method, path) of every route the app registers, read from the router of an app that is not started."""
    from bot.app import create_app
    from config.settings import Settings

    app = create_app(Settings(_env_file=None, env="test", log_level="WARNING"))  # type: ignore[call-arg]
    found = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource and r.method != "HEAD"}
    return sorted(found)


def concrete(path: str, ids: dict[str, str]) -> str:
    params = {"account": "default", "section": "faq", "tag": "x", **ids}
    return re.sub(r"\{(\w+)\}", lambda m: params.get(m.group(1), "999999"), path)


class Probe:
    def __init__(self, base: str, http: aiohttp.ClientSession) -> None:
        self.base, self.http = base, http
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []
        self.leaks: list[str] = []
        self.sessions: dict[str, dict[str, str]] = {"anonymous": {}}

    def count(self, what: str, status: int, body: str, role: str) -> None:
        self.statuses[status] += 1
        if status >= 500:
            self.failures.append(f"{status} {what} as {role}")
        sees_personal = role in ("supervisor", "admin")
        if not sees_personal and CANARY_PHONE in body:
            self.leaks.append(f"phone in {what} as {role}")
        if role == "anonymous" and CANARY_NAME in body:
            self.leaks.append(f"name in {what} as {role}")

    async def call(self, role: str, method: str, path: str, **kw: Any) -> tuple[int, str]:
        headers = {**self.sessions[role], **kw.pop("headers", {})}
        async with self.http.request(method, self.base + path, headers=headers, **kw) as resp:
            body = await resp.text(errors="replace")
        self.count(f"{method} {path}", resp.status, body, role)
        return resp.status, body

    async def sign_in(self, role: str) -> None:
        async with aiohttp.ClientSession() as fresh:
            resp = await fresh.post(self.base + "/api/v1/auth/login",
                                    json={"username": f"probe-{role}", "password": PASSWORD})  # fmt: skip
            assert resp.status == 200, await resp.text()
            sid = resp.cookies["huike_session"].value
            self.sessions[role] = {"Cookie": f"huike_session={sid}", "X-CSRF-Token": (await resp.json())["csrf_token"]}
        self.statuses[200] += 1

    async def seed_canary(self) -> str:
        customer = {"name": CANARY_NAME, "phone": CANARY_PHONE, "points": 10}
        await self.call("admin", "POST", "/api/v1/customers:bulk", json={"customers": [customer]})
        status, body = await self.call("admin", "GET", f"/api/v1/customers?q={CANARY_PHONE}")
        found = re.search(r'"id":\s*(\d+)', body)
        text = f"我的手机号是 {CANARY_PHONE}，我叫{CANARY_NAME}"
        await self.call("anonymous", "POST", "/api/v1/webchat/messages", json={"text": text, "client_msg_id": "c"})
        return found.group(1) if status == 200 and found else "1"

    async def sweep(self, customer_id: str) -> None:
        for method, path in routes():
            if path == "/static":
                continue
            for ids in ({}, {"customer_id": customer_id, "conversation_id": "1", "faq_id": "1", "user_id": "1"}):
                url = concrete(path, ids)
                for role in ("anonymous", *ROLES):
                    if role != "anonymous" and f"{method} {path}" in SKIP_FOR_STAFF:
                        continue
                    if method == "POST" and path.endswith("/erase") and ids:
                        continue  # keep the canary for the later requests
                    await self.call(role, method, url, **({} if method == "GET" else {"json": {}}))

    async def hostile(self) -> None:
        for probe in probes(TOKEN):
            answer = await send(self.http, self.base, probe, self.sessions.get(probe.role, {}))
            self.count(probe.name, answer.status, answer.body, probe.role)
            if answer.status not in probe.expect:
                print(f"  unexpected {answer.status} for {probe.name}: {answer.body[:120]}")

    async def floods(self) -> dict[str, int]:
        limited = {"webchat": 0, "login": 0}
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as visitor:  # keeps its cookie
            for n in range(60):  # one visitor, one address
                async with visitor.post(self.base + "/api/v1/webchat/messages",
                                        json={"text": f"刷屏 {n}", "client_msg_id": f"flood-{n}"}) as resp:  # fmt: skip
                    self.count("webchat flood", resp.status, await resp.text(), "anonymous")
                    limited["webchat"] += resp.status == 429
        for _ in range(10):
            status, _ = await self.call("anonymous", "POST", "/api/v1/auth/login",
                                        json={"username": "probe-admin", "password": "wrong-password"})  # fmt: skip
            limited["login"] += status == 429
        limited["alone_ms"], limited["flooded_ms"] = await self.neighbour_latency()
        host, port = self.base.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        reply = await reader.read()
        writer.close()
        self.count("over-long request line", int(reply.split(b" ")[1]), "", "anonymous")
        return limited


    async def neighbour_latency(self) -> tuple[int, int]:
        """Median answer time (ms) of a polite visitor's 5 messages, alone and while another floods."""

        async def polite(tag: str) -> int:
            times = []
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as visitor:
                for n in range(5):
                    started = time.perf_counter()
                    body = {"text": "多久发货？", "client_msg_id": f"{tag}-{n}"}
                    async with visitor.post(self.base + "/api/v1/webchat/messages", json=body) as resp:
                        self.count("polite visitor", resp.status, await resp.text(), "anonymous")
                    times.append(time.perf_counter() - started)
            return round(1000 * sorted(times)[2])

        async def flood(abuser: aiohttp.ClientSession, lane: int, limited: asyncio.Event, stop: asyncio.Event) -> None:
            n = 0
            while not stop.is_set() and n < 3000:
                body = {"text": "刷", "client_msg_id": f"abuse-{lane}-{n}"}
                async with abuser.post(self.base + "/api/v1/webchat/messages", json=body) as resp:
                    self.count("abusive visitor", resp.status, await resp.text(), "anonymous")
                    if resp.status == 429:
                        limited.set()
                n += 1

        alone = await polite("alone")
        stop, limited = asyncio.Event(), asyncio.Event()
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as abuser:  # one visitor
            async with abuser.post(self.base + "/api/v1/webchat/messages",
                                   json={"text": "刷", "client_msg_id": "abuse-first"}) as resp:  # fmt: skip
                self.count("abusive visitor", resp.status, await resp.text(), "anonymous")
            lanes = [asyncio.create_task(flood(abuser, lane, limited, stop)) for lane in range(4)]
            await asyncio.wait_for(limited.wait(), 120)  # its quota is spent: from now on it only gets 429s
            flooded = await polite("flooded")
            stop.set()
            await asyncio.gather(*lanes)
        return alone, flooded


async def probe(base: str) -> tuple[Probe, dict[str, int]]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        p = Probe(base, http)
        for role in ROLES:
            await p.sign_in(role)
        customer_id = await p.seed_canary()
        await p.hostile()
        await p.sweep(customer_id)
        limited = await p.floods()
    return p, limited


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="huike-security-") as tmp:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUIKE_")} | {
            "HUIKE_ENV": "dev", "HUIKE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/huike.db", "HUIKE_DATA_DIR": tmp,
            "HUIKE_HOST": "127.0.0.1", "HUIKE_PORT": str(port), "HUIKE_SECRET_KEY": secrets.token_hex(16),
            "HUIKE_LOG_JSON": "true", "HUIKE_LOG_LEVEL": "INFO", "HUIKE_WECHAT_TOKEN": TOKEN,
            "HUIKE_WECOM_TOKEN": TOKEN, "HUIKE_WECOM_CORP_ID": "ww-probe",
            "HUIKE_WECOM_AES_KEY": "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR",
        }  # fmt: skip
        subprocess.run([HUIKE, "db", "upgrade"], env=env, check=True, capture_output=True)
        for role in ROLES:
            subprocess.run([HUIKE, "user", "create", "-u", f"probe-{role}", "-r", role, "-p", PASSWORD],
                           env=env, check=True, capture_output=True)  # fmt: skip
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log:
            server = subprocess.Popen([HUIKE, "run", "--host", "127.0.0.1", "--port", str(port)],
                                      env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
            try:
                base = f"http://127.0.0.1:{port}"
                _wait_ready(base, server)
                started = time.monotonic()
                result, limited = asyncio.run(probe(base))
                seconds = time.monotonic() - started
            finally:
                server.terminate()
                server.wait(30)
        server_log = log_path.read_text(errors="replace")
    tracebacks = server_log.count("Traceback")
    errors = sum(n for status, n in result.statuses.items() if status >= 500)
    print(f"security probe of {base} ({seconds:.0f} s)")
    print(f"  requests:               {sum(result.statuses.values())}")
    print(f"  responses >= 500:       {errors}")
    print(f"  personal data leaked:   {len(result.leaks)}")
    print(f"  tracebacks in the log:  {tracebacks}")
    print(f"  rate limited (429):     {result.statuses[429]} (web-chat flood {limited['webchat']}/60, "
          f"wrong passwords {limited['login']}/10)")  # fmt: skip
    print(f"  polite visitor's median answer: {limited['alone_ms']} ms alone, "
          f"{limited['flooded_ms']} ms while another visitor floods on 4 connections (429s)")
    print("  statuses:               " + ", ".join(f"{s}: {n}" for s, n in sorted(result.statuses.items())))
    for line in (result.failures + result.leaks)[:30]:
        print("  !", line)
    return 1 if errors or result.leaks or tracebacks or not limited["webchat"] or not limited["login"] else 0


def _wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    import urllib.request

    deadline = time.monotonic() + 300  # the NLU model is trained at first start
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"huike run exited with {server.returncode}")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("huike run did not become ready")


if __name__ == "__main__":
    raise SystemExit(main())
