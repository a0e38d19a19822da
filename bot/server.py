"""Serve the app: one process, or `--workers N` processes sharing one listening socket.

With N > 1 the parent binds the port once, forks N workers that each run the whole app on
that socket (the kernel hands every new connection to one of them), and supervises them:
a worker that dies (crash, OOM, `kill -9`) is started again, and SIGTERM/SIGINT is passed to
every worker, which stops accepting, lets in-flight requests finish (up to SHUTDOWN_TIMEOUT)
and then stops its background tasks. Nothing is kept in a worker that another one needs:
dedup, tokens, sessions, rate limits and console fan-out live in PostgreSQL and Redis, and
the scheduler runs its jobs on the leader only (bot/leader.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from types import FrameType

from aiohttp import web

from bot import procmetrics
from bot.app import create_app
from config.settings import Settings

SHUTDOWN_TIMEOUT = 15.0
RESTART_BACKOFF = (0.5, 10.0)  # seconds before restarting a dead worker: first, cap
BACKLOG = 2048


def banner(settings: Settings) -> str:
    url = settings.public_url
    demo = "" if settings.is_production else (
        f"   (demo admin: {settings.demo_admin_username} / {settings.demo_admin_password.get_secret_value()})"
    )
    lines = [
        f"慧客 Huike serving on {url}" + (f" with {settings.workers} workers" if settings.workers > 1 else ""),
        f"  web-chat demo:   {url}/",
        f"  agent console:   {url}/console{demo}",
        f"  WeChat callback: {url}/channels/wechat/default",
        f"  health/metrics:  {url}/healthz  {url}/metrics",
    ]
    return "\n".join(lines)


def refusal(settings: Settings) -> str | None:
    """Why these settings cannot run several workers (None when they can)."""
    if settings.workers <= 1:
        return None
    if settings.is_sqlite or not settings.redis_url:
        return (
            f"--workers {settings.workers} needs PostgreSQL (HUIKE_DATABASE_URL=postgresql+asyncpg://…) and "
            "Redis (HUIKE_REDIS_URL=redis://…); the embedded SQLite setup runs one worker"
        )
    return None


def serve(settings: Settings) -> None:
    problem = refusal(settings)
    if problem:
        print(f"huike: {problem}", file=sys.stderr, flush=True)
        raise SystemExit(2)
    print(banner(settings), flush=True)
    if settings.workers == 1:
        _run_worker(settings, sock=None)
        return
    sock = bind_socket(settings.host, settings.port)
    Supervisor(settings, sock).run()


def bind_socket(host: str, port: int) -> socket.socket:
    """The one listening socket every worker inherits."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def _run_worker(settings: Settings, sock: socket.socket | None) -> None:
    """One worker: the whole app. aiohttp turns SIGTERM/SIGINT into a graceful shutdown."""
    if sock is None:
        web.run_app(create_app(settings), host=settings.host, port=settings.port,
                    shutdown_timeout=SHUTDOWN_TIMEOUT, print=None, access_log=None)
    else:
        web.run_app(create_app(settings), sock=sock, shutdown_timeout=SHUTDOWN_TIMEOUT,
                    print=None, access_log=None)


class Supervisor:
    """Forks the workers, restarts the ones that die, and stops them all on SIGTERM/SIGINT."""

    def __init__(self, settings: Settings, sock: socket.socket) -> None:
        self.settings, self.sock = settings, sock
        self.workers: dict[int, int] = {}  # pid -> slot
        self.stopping = False
        self.restarts: dict[int, float] = {}  # slot -> current backoff
        self.started: dict[int, float] = {}  # slot -> when its current worker started

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        for slot in range(self.settings.workers):
            self._spawn(slot)
        exit_code = 0
        while self.workers:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for clarity
                continue
            if pid not in self.workers:
                continue
            slot = self.workers.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            procmetrics.worker_exited(pid)
            if self.stopping:
                exit_code = exit_code or (code if code > 0 else 0)
                continue
            print(f"huike: worker {slot} (pid {pid}) exited with {code}; restarting", file=sys.stderr, flush=True)
            if time.monotonic() - self.started.get(slot, 0.0) > 60:  # it had been healthy: no penalty
                self.restarts.pop(slot, None)
            delay = self.restarts.get(slot, RESTART_BACKOFF[0])
            time.sleep(delay)
            self.restarts[slot] = min(delay * 2, RESTART_BACKOFF[1])
            if not self.stopping:
                self._spawn(slot)
        self.sock.close()
        raise SystemExit(exit_code)

    def _spawn(self, slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                os.environ["HUIKE_WORKER_SLOT"] = str(slot)
                _run_worker(self.settings, self.sock)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.workers[pid] = slot
        self.started[slot] = time.monotonic()

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
