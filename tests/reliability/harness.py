"""Real `huike run` processes on loopback, a cuttable TCP proxy, and a WeChat sender over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import aiohttp
import psutil
from aiohttp import web

from bot.channels.wechat_common import Cipher, render_xml, safe_xml_dict, sign
from tests.fakes.wechat_server import Call, FakeWeChat

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
HUIKE = str(ROOT / ".venv" / "bin" / "huike")
TOKEN = "huike-test-token"
AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Huike:
    """`huike run [--workers N]` as a real process (group) on a loopback port. Sync: usable from any loop."""

    def __init__(self, env: dict[str, str], *, workers: int = 1, log_dir: Path) -> None:
        self.env, self.workers, self.log_dir = env, workers, log_dir
        self.port = int(env["HUIKE_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, *, ready_within: float = 180.0) -> Huike:
        self.starts += 1
        log = open(self.log_dir / f"huike-{self.port}-{self.starts}.log", "wb")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [HUIKE, "run", "--workers", str(self.workers)], env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        self.wait_ready(ready_within)
        return self

    def wait_ready(self, within: float = 180.0) -> None:
        """/readyz answers 200 and every worker is up (each has served /readyz at least once)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"huike exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=2) as r:
                    if r.status == 200 and len(self.worker_pids()) >= (self.workers if self.workers > 1 else 0):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"huike not ready in {within}s: {self.log_tail()}")

    def worker_pids(self) -> list[int]:
        if self.proc is None or self.proc.poll() is not None:
            return []
        return [c.pid for c in psutil.Process(self.proc.pid).children() if c.is_running()]

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def kill9(self) -> None:
        """SIGKILL the whole tree: nothing gets to clean up."""
        assert self.proc is not None
        for pid in [*self.worker_pids(), self.proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    async def wait_exit(self, within: float = 60.0) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + within
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError("huike did not exit in time")
            await asyncio.sleep(0.1)
        return self.proc.returncode

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill9()

    def log_tail(self, chars: int = 3000) -> str:
        logs = sorted(self.log_dir.glob(f"huike-{self.port}-*.log"))
        return "".join(p.read_text(errors="replace") for p in logs)[-chars:]


class LoopThread:
    """An event loop in a thread, for servers that must outlive one test's loop (fake WeChat, proxies)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="reliability-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class FlakyWeChat(FakeWeChat):
    """The fake WeChat API, failing a share of customer-service sends with a transient error (-1)."""

    def __init__(self, *, failure_rate: float = 0.0, seed: int = 7) -> None:
        super().__init__()
        self.failure_rate = failure_rate
        self.random = random.Random(seed)
        self.failed_sends = 0

    async def _custom_send(self, request: web.Request, call: Call) -> web.StreamResponse:
        if self.random.random() < self.failure_rate:
            self.failed_sends += 1
            setattr(call, "failed", True)  # noqa: B010 - marks the recorded call
            return web.json_response({"errcode": -1, "errmsg": "system error"})
        return await super()._custom_send(request, call)

    def delivered(self) -> list[Call]:
        """Customer-service sends that succeeded."""
        return [c for c in self.calls("/cgi-bin/message/custom/send") if not getattr(c, "failed", False)]


class WeChatSender:
    """Posts encrypted, signed Official Account callbacks the way WeChat does."""

    def __init__(self, base_url: str, app_id: str, path: str = "/channels/wechat/default") -> None:
        self.url = base_url + path
        self.cipher = Cipher(TOKEN, AES_KEY, app_id, wecom=False)

    @staticmethod
    def text_xml(openid: str, content: str, msg_id: str) -> str:
        return render_xml({"ToUserName": "gh_test", "FromUserName": openid, "CreateTime": str(int(time.time())),
                           "MsgType": "text", "Content": content, "MsgId": msg_id})  # fmt: skip

    def envelope(self, xml: str) -> tuple[dict[str, str], bytes]:
        ts, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
        env = safe_xml_dict(self.cipher.encrypt(xml, nonce, ts))
        body = render_xml({"ToUserName": "gh_test", "Encrypt": env["Encrypt"]}).encode()
        query = {"timestamp": ts, "nonce": nonce, "msg_signature": str(env["MsgSignature"]),
                 "encrypt_type": "aes", "signature": sign(TOKEN, ts, nonce), "openid": "x"}  # fmt: skip
        return query, body

    async def deliver(self, session: aiohttp.ClientSession, query: dict[str, str], body: bytes,
                      retries: int = 3) -> tuple[int, list[int]]:  # fmt: skip
        """As WeChat does: post, and re-post (up to `retries` times) while the answer is not 200.

        Returns (final status, every status seen)."""
        seen: list[int] = []
        for attempt in range(retries + 1):
            status, _ = await self.post(session, query, body)
            seen.append(status)
            if status == 200:
                break
            await asyncio.sleep(0.5 * (attempt + 1))
        return seen[-1], seen

    async def post(self, session: aiohttp.ClientSession, query: dict[str, str], body: bytes) -> tuple[int, str]:
        """(status, passive reply content or "") — status 0 when the connection failed."""
        try:
            async with session.post(f"{self.url}?{urlencode(query)}", data=body,
                                    headers={"Content-Type": "text/xml"}) as resp:  # fmt: skip
                text = await resp.text()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, OSError):
            return 0, ""
        if status == 200 and text.startswith("<xml>"):
            env = safe_xml_dict(text)
            plain = self.cipher.decrypt(str(env["Encrypt"]), str(env["MsgSignature"]), str(env["TimeStamp"]),
                                        str(env["Nonce"]))  # fmt: skip
            return status, str(safe_xml_dict(plain).get("Content", ""))
        return status, ""


def base_env(database_url: str, redis_url: str, data_dir: Path, nlu_model_path: Path, **extra: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUIKE_")}
    env.update({
        "HUIKE_ENV": "test",
        "HUIKE_DATABASE_URL": database_url,
        "HUIKE_REDIS_URL": redis_url,
        "HUIKE_REDIS_NAMESPACE": f"huike-rel-{uuid.uuid4().hex[:8]}",
        "HUIKE_DATA_DIR": str(data_dir),
        "HUIKE_NLU_MODEL_PATH": str(nlu_model_path),
        "HUIKE_PORT": str(free_port()),
        "HUIKE_LOG_LEVEL": "WARNING",
        "HUIKE_LOG_JSON": "true",
        # the storms come from one address on purpose: the web-chat rate limit is not what they test
        "HUIKE_WEBCHAT_MESSAGES_PER_VISITOR": "1000000",
        "HUIKE_WEBCHAT_MESSAGES_PER_ADDRESS": "1000000",
        "HUIKE_WECHAT_TOKEN": TOKEN,
        "HUIKE_WECHAT_AES_KEY": AES_KEY,
    })  # fmt: skip
    env.update({k: str(v) for k, v in extra.items()})
    return env
