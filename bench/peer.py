"""Huike against the peer a brand would otherwise run: Rasa 3.6.21's REST channel, same FAQ, same client.

One run on one machine: `huike seed-demo` -> `huike nlu export --format rasa` -> `rasa train` (the
exported NLU plus a rule `faq -> utter_faq`) -> then, one after the other, each server under the
same load client: a closed loop of 50 clients asking paraphrased demo-FAQ questions (held out of
the training data), then an open-loop ladder of fixed arrival rates (the highest one with p99 under
100 ms and no errors). Every answer is checked against the FAQ's answer text. Server CPU per
message is the process tree's CPU time (psutil) over the closed loop divided by the messages: on a
shared machine it is the figure to trust; the load average is printed beside every table.

Systems: Huike web-chat (SQLite, 1 worker), Huike WeChat callbacks (same server, signed plaintext
callbacks, passive reply), Rasa REST with the in-memory tracker, Rasa REST with the SQL tracker on
SQLite. BENCH_PEER_PG=1: Huike on PostgreSQL + Redis with 1 and 2 workers instead of SQLite.
BENCH_QUICK=1: short phases, fewer epochs (a few minutes). Needs `make rasa`.
The trained Rasa model is kept under var/rasa-models/ by a hash of the export (training takes
minutes): a second run with the same FAQ reuses it. BENCH_PEER_ONLY=huike: Huike alone (no Rasa;
ratios are left out). BENCH_PEER_PROFILE=DIR: py-spy
records a flame graph of the server over each Huike closed loop into DIR (`pip install py-spy`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from _common import HUIKE, QUICK, drive, drive_rate, echo_server, free_port, report, wait_http  # noqa: E402

from bot.channels.wechat_common import render_xml, sign  # noqa: E402

RASA = ROOT / ".venv-rasa" / "bin" / "rasa"
CLIENTS = 50
SECONDS = 5.0 if QUICK else 20.0
STEP_SECONDS = 3.0 if QUICK else 8.0
EPOCHS = 20 if QUICK else 60
P99_MS = 100.0
RATES = (5, 10, 15, 20, 25, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250, 300, 400, 500)
TOKEN = "bench-token"
Ask = Callable[[aiohttp.ClientSession, int, int], Awaitable[bool]]

# Customer wordings that are not in the FAQ's training examples -> the FAQ question they mean.
PARAPHRASES = [
    ("我的快递到哪了", "怎么查询订单物流？"),
    ("下单以后几天能发出", "下单后多久发货？"),
    ("退款几天能到", "退款多久能到账？"),
    ("发票怎么开", "怎么开发票？"),
    ("积分能当钱用吗", "积分可以抵扣现金吗？"),
    ("优惠券怎么用啊", "优惠券怎么使用？"),
    ("我想退货怎么操作", "怎么申请退货？"),
    ("买多少钱包邮", "满多少钱包邮？"),
    ("密码忘了怎么办", "忘记登录密码怎么办？"),
    ("门店几点开门", "门店几点开门营业？"),
    ("能用花呗吗", "可以用花呗分期付款吗？"),
    ("你们家是正品吗", "你们卖的是正品吗？"),
    ("收货地址写错了", "下单后怎么修改收货地址？"),
    ("不想要了可以取消订单吗", "怎么取消订单？"),
    ("客服几点上班", "客服的服务时间是几点？"),
    ("手机号换了怎么改绑定", "怎么更换绑定的手机号？"),
]


def faq_answers() -> dict[str, str]:
    doc = yaml.safe_load((ROOT / "config" / "demo_faq.yml").read_text(encoding="utf-8"))
    return {e["question"]: " ".join(e["answer"].split()) for e in doc["entries"]}


ANSWERS = faq_answers()


def right(n: int, texts: list[str]) -> bool:
    """The FAQ's own answer (a clarifying question, even one that lists the right FAQ, is not)."""
    expected = ANSWERS[PARAPHRASES[n % len(PARAPHRASES)][1]]
    return any(expected in " ".join(t.split()) for t in texts)


def question(n: int) -> str:
    return PARAPHRASES[n % len(PARAPHRASES)][0]


class Tally:
    """Right answers among the answered requests of the current phase."""

    def __init__(self) -> None:
        self.right = self.answered = 0

    def add(self, ok: bool) -> None:
        self.answered += 1
        self.right += ok

    def share(self) -> float:
        return round(self.right / self.answered, 4) if self.answered else 0.0


# --- clients ------------------------------------------------------------------------------

def webchat_ask(base: str, tally: Tally) -> Ask:
    counter = itertools.count()
    run = uuid.uuid4().hex[:6]

    async def ask(session: aiohttp.ClientSession, cid: int, n: int) -> bool:
        body = {"text": question(n + cid), "client_msg_id": f"{run}-{cid}-{n}-{next(counter)}"}
        async with session.post(base + "/api/v1/webchat/messages", json=body) as resp:
            data = await resp.json(content_type=None)
            if resp.status != 201:
                return False
        tally.add(right(n + cid, [r["text"] for r in data.get("replies", [])]))
        return True

    return ask


CONTENT = re.compile(r"<Content>(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?</Content>", re.S)


def wechat_ask(base: str, tally: Tally) -> Ask:
    run = uuid.uuid4().hex[:6]

    async def ask(session: aiohttp.ClientSession, cid: int, n: int) -> bool:
        ts, nonce, openid = str(int(time.time())), uuid.uuid4().hex[:10], f"o{run}-{cid}"
        xml = render_xml({"ToUserName": "gh_bench", "FromUserName": openid, "CreateTime": ts, "MsgType": "text",
                          "Content": question(n + cid), "MsgId": str(uuid.uuid4().int % 10**18)})  # fmt: skip
        query = urlencode({"timestamp": ts, "nonce": nonce, "signature": sign(TOKEN, ts, nonce), "openid": openid})
        async with session.post(f"{base}/channels/wechat/default?{query}", data=xml.encode()) as resp:
            text = await resp.text()
            if resp.status != 200:
                return False
        if text.startswith("<xml>"):  # the passive reply; "success" means the answer went by the API
            tally.add(right(n + cid, [html.unescape(t) for t in CONTENT.findall(text)]))
        return True

    return ask


def rasa_ask(base: str, tally: Tally) -> Ask:
    run = uuid.uuid4().hex[:6]

    async def ask(session: aiohttp.ClientSession, cid: int, n: int) -> bool:
        body = {"sender": f"{run}-{cid}", "message": question(n + cid)}
        async with session.post(base + "/webhooks/rest/webhook", json=body) as resp:
            data = await resp.json(content_type=None)
            if resp.status != 200:
                return False
        tally.add(right(n + cid, [m.get("text", "") for m in data or []]))
        return True

    return ask


# --- measuring ----------------------------------------------------------------------------

def tree(pid: int) -> list[psutil.Process]:
    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)]


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in tree(pid):
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def rss_mb(pid: int) -> tuple[float, float]:
    """(the whole tree, the largest process): a multi-worker server's RSS per worker is the second."""
    sizes = []
    for p in tree(pid):
        with contextlib.suppress(psutil.Error):
            sizes.append(p.memory_info().rss / 2**20)
    return round(sum(sizes), 1), round(max(sizes), 1)


async def measure(ask: Ask, pid: int, tally: Tally, profile: str = "") -> dict[str, Any]:
    await drive(ask, clients=CLIENTS, seconds=2.0 if QUICK else 5.0)  # warm-up: model load, caches
    tally.__init__()  # type: ignore[misc]
    load_before, cpu_before = os.getloadavg()[0], cpu_seconds(pid)
    with flame_graph(pid, profile):
        closed = await drive(ask, clients=CLIENTS, seconds=SECONDS)
    cpu = cpu_seconds(pid) - cpu_before
    answered = closed["requests"]
    result: dict[str, Any] = {
        **closed,
        "cpu_ms_per_msg": round(cpu * 1000 / max(1, answered), 2),
        "answers_right": tally.share(),
        "loadavg_1m": round((load_before + os.getloadavg()[0]) / 2, 2),
    }
    best: dict[str, Any] = {}
    for rate in RATES:
        step = await drive_rate(ask, rate=rate, seconds=STEP_SECONDS)
        if step["p99_ms"] >= P99_MS or step["errors"] or step["throughput_rps"] < rate * 0.9:
            break
        best = step
    result |= {"open_rate": best.get("offered_rps", 0), "open_p99_ms": best.get("p99_ms")}
    result["rss_mb"], result["rss_worker_mb"] = rss_mb(pid)
    return result


@contextlib.contextmanager
def flame_graph(pid: int, name: str) -> Iterator[None]:
    """py-spy samples the server (and its workers) while the block runs; SVG plus raw folded stacks."""
    out = os.environ.get("BENCH_PEER_PROFILE")
    if not out or not name:
        yield
        return
    Path(out).mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).parent / "py-spy")
    procs = [
        subprocess.Popen([spy, "record", "--pid", str(pid), "--subprocesses", "--rate", "200", "--nonblocking",
                          "--format", fmt, "--output", f"{out}/{name}.{ext}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fmt, ext in (("flamegraph", "svg"), ("raw", "txt"))
    ]  # fmt: skip
    try:
        yield
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)


# --- servers ------------------------------------------------------------------------------

def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def run_ok(cmd: list[str], env: dict[str, str], cwd: Path | None = None, timeout: float = 1800) -> None:
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def huike_env(db_url: str, data_dir: Path, wechat_api: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUIKE_")}
    env |= {"HUIKE_DATABASE_URL": db_url, "HUIKE_DATA_DIR": str(data_dir), "HUIKE_LOG_LEVEL": "WARNING",
            "HUIKE_WECHAT_TOKEN": TOKEN, "HUIKE_WECHAT_APP_ID": "wx_fake_app",
            "HUIKE_WECHAT_APP_SECRET": "fake-secret", "HUIKE_WECHAT_API_BASE": wechat_api}  # fmt: skip
    return env


@contextlib.contextmanager
def huike(env: dict[str, str], workers: int = 1) -> Iterator[tuple[str, int]]:
    port = free_port()
    run_env = {**env, "HUIKE_PORT": str(port), "HUIKE_REDIS_NAMESPACE": f"peer-{uuid.uuid4().hex[:8]}"}
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    cmd = [HUIKE, "run", *(["--workers", str(workers)] if workers > 1 else [])]
    proc = subprocess.Popen(cmd, env=run_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout=300)
        while workers > 1 and len(psutil.Process(proc.pid).children()) < workers:
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        stop(proc)
        log.seek(0)
        errors = [ln for ln in log.read().decode(errors="replace").splitlines() if "error" in ln.lower()]
        log.close()
        if errors:
            print(f"huike logged {len(errors)} error lines; first: {errors[0][:300]}", file=sys.stderr)


def rasa_project(env: dict[str, str], work: Path) -> Path:
    """Export Huike's FAQ, add the one rule a FAQ bot needs, train with Rasa's own CLI."""
    project = work / "rasa"
    run_ok([HUIKE, "nlu", "export", "--format", "rasa", "--out", str(project), "--epochs", str(EPOCHS)], env)
    config = yaml.safe_load((project / "config.yml").read_text(encoding="utf-8"))
    config["policies"] = [{"name": "RulePolicy"}]
    (project / "config.yml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    rules = {"version": "3.1", "rules": [{"rule": "faq", "steps": [{"intent": "faq"}, {"action": "utter_faq"}]}]}
    (project / "data" / "rules.yml").write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    (project / "credentials.yml").write_text("rest:\n", encoding="utf-8")
    (project / "endpoints-memory.yml").write_text("tracker_store:\n  type: InMemoryTrackerStore\n", encoding="utf-8")
    (project / "endpoints-sql.yml").write_text(
        f"tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: {work / 'tracker.db'}\n", encoding="utf-8"
    )
    digest = hashlib.sha256()
    for path in sorted(p for p in project.rglob("*.yml") if not p.name.startswith(("credentials", "endpoints"))):
        digest.update(path.read_bytes())
    cached = ROOT / "var" / "rasa-models" / f"{digest.hexdigest()[:16]}.tar.gz"  # same export, same model
    (project / "models").mkdir(exist_ok=True)
    if cached.exists():
        shutil.copy(cached, project / "models" / "huike.tar.gz")
        return project
    started = time.monotonic()
    run_ok([str(RASA), "train", "--config", "config.yml", "--domain", "domain.yml", "--data", "data",
            "--out", "models", "--fixed-model-name", "huike"], rasa_env(env), cwd=project)  # fmt: skip
    print(f"rasa trained in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    cached.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(project / "models" / "huike.tar.gz", cached)
    return project


def rasa_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "3", "SANIC_ACCESS_LOG": "false"}


@contextlib.contextmanager
def rasa(project: Path, env: dict[str, str], endpoints: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    log = (project / f"rasa-{endpoints}.log").open("wb")
    proc = subprocess.Popen(
        [str(RASA), "run", "-m", "models/huike.tar.gz", "--credentials", "credentials.yml", "--endpoints",
         endpoints, "-i", "127.0.0.1", "-p", str(port)],
        env=rasa_env(env), cwd=project, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/", timeout=600)
        yield base, proc.pid
    finally:
        stop(proc)
        log.close()


@contextlib.contextmanager
def wechat_api() -> Iterator[str]:
    """The fake WeChat API (for replies that miss the passive answer), a process of its own."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.wechat_server", "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@contextlib.contextmanager
def huike_database(work: Path) -> Iterator[str]:
    if os.environ.get("BENCH_PEER_PG") != "1":
        yield f"sqlite+aiosqlite:///{work / 'huike.db'}"
        return
    from tests import dbutil

    pg = os.environ.get("HUIKE_BENCH_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    url = dbutil.create_database(pg, work, label="peer")
    try:
        yield url
    finally:
        dbutil.drop_database(pg, url)


# --- the run ------------------------------------------------------------------------------

async def run(work: Path, api: str, url: str) -> None:
    pg = os.environ.get("BENCH_PEER_PG") == "1"
    rows: list[tuple[str, dict[str, Any]]] = []
    figures: dict[str, Any] = {"clients": CLIENTS, "seconds": SECONDS, "cpus": os.cpu_count(),
                               "database": "postgresql" if pg else "sqlite",
                               "loadavg_1m_before": round(os.getloadavg()[0], 2)}  # fmt: skip
    env = huike_env(url, work / "huike-data", api)
    if pg:
        env["HUIKE_REDIS_URL"] = os.environ.get("HUIKE_BENCH_REDIS", "redis://127.0.0.1:6379/0")
    run_ok([HUIKE, "db", "upgrade"], env)
    run_ok([HUIKE, "seed-demo"], env)
    only_huike = os.environ.get("BENCH_PEER_ONLY") == "huike"
    project = None if only_huike else await asyncio.to_thread(rasa_project, env, work)
    for workers in (1, 2) if pg else (1,):
        for path, ask_of in (("webchat", webchat_ask), ("wechat", wechat_ask)):
            tally = Tally()
            with huike(env, workers) as (base, pid):
                result = await measure(ask_of(base, tally), pid, tally, f"huike-{path}-w{workers}")
            key = f"huike_{path}" + (f"_w{workers}" if pg else "")
            rows.append((f"huike {path}" + (f", {workers} worker(s)" if pg else ""), result))
            figures[key] = result
    for label, endpoints in (("rasa_memory", "endpoints-memory.yml"), ("rasa_sql", "endpoints-sql.yml")):
        if project is None:
            figures[label] = {"throughput_rps": 0, "open_rate": 0, "answers_right": None}
            continue
        tally = Tally()
        with rasa(project, env, endpoints) as (base, pid):
            result = await measure(rasa_ask(base, tally), pid, tally)
        rows.append((label.replace("_", " "), result))
        figures[label] = result
    with echo_server() as echo_url:

        async def echo(session: aiohttp.ClientSession, cid: int, n: int) -> bool:
            async with session.post(echo_url, json={"text": question(n), "client_msg_id": f"{cid}-{n}"}) as resp:
                await resp.read()
                return resp.status == 200

        await drive(echo, clients=CLIENTS, seconds=1.0)
        reference = await drive(echo, clients=CLIENTS, seconds=SECONDS)
    rows.append(("bare aiohttp echo", reference))
    figures["echo"] = reference
    suffix = "_w1" if pg else ""
    web, wx, peer = figures["huike_webchat" + suffix], figures["huike_wechat" + suffix], figures["rasa_memory"]
    figures |= {
        "closed_ratio": round(web["throughput_rps"] / peer["throughput_rps"], 2) if peer["throughput_rps"] else None,
        "open_ratio": round(web["open_rate"] / peer["open_rate"], 2) if peer["open_rate"] else None,
        "cpu_ms_per_msg": web["cpu_ms_per_msg"],
        "wechat_cpu_ms_per_callback": wx["cpu_ms_per_msg"],
        "rss_mb": max(r["rss_worker_mb"] for k, r in figures.items() if k.startswith("huike_")),
        "answers_right": min(web["answers_right"], wx["answers_right"]),
        "rasa_answers_right": peer["answers_right"],
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
    }
    if pg:
        w1, w2 = figures["huike_webchat_w1"], figures["huike_webchat_w2"]
        scaling = w2["throughput_rps"] / w1["throughput_rps"] if w1["throughput_rps"] else 0.0
        figures["scaling_1_to_2"] = round(scaling, 2)
    report("peer", rows, figures)


def main() -> None:
    if not RASA.exists() and os.environ.get("BENCH_PEER_ONLY") != "huike":
        sys.exit("`.venv-rasa` is missing: run `make rasa`")
    with tempfile.TemporaryDirectory() as tmp, wechat_api() as api, huike_database(Path(tmp)) as url:
        asyncio.run(run(Path(tmp), api, url))


if __name__ == "__main__":
    main()
