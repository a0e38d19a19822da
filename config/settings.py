"""Runtime settings: every knob is an environment variable with the HUIKE_ prefix (or a .env line)."""

from __future__ import annotations

import math
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-insecure-secret-change-me"
DEMO_ADMIN_PASSWORD = "huike-admin"  # documented in the README: never accepted in production (see bot.web.auth)
MIN_SECRET_BYTES = 32
WECHAT_API_BASE = "https://api.weixin.qq.com"
WECOM_API_BASE = "https://qyapi.weixin.qq.com"


class Settings(BaseSettings):
    """Built once in `main` (never at import) and handed to `create_app`."""

    model_config = SettingsConfigDict(env_prefix="HUIKE_", env_file=".env", extra="ignore")

    env: Literal["dev", "test", "production"] = "dev"
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)
    database_url: str = "sqlite+aiosqlite:///./var/huike.db"
    redis_url: str | None = None
    redis_namespace: str = "huike"
    secret_key: SecretStr = SecretStr(DEV_SECRET)
    data_dir: Path = Path("var")
    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON when stdout is not a TTY
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    trust_proxy: bool = False  # honour X-Forwarded-For / -Proto from a reverse proxy
    db_pool_timeout: float = 3.0  # seconds before a request fails fast with 503 when the DB is gone
    presence_grace_seconds: float = Field(60.0, ge=5.0)  # a console silent this long: its agent goes offline
    scheduler_lease: float = Field(30.0, ge=3.0)  # seconds a dead scheduler leader keeps its lease (with workers > 1)

    # abuse limits (counted in Redis when configured, so every worker counts together)
    login_free_failures: int = Field(5, ge=1)  # wrong passwords per (username, address) before delays start
    login_max_delay: int = Field(900, ge=1)  # seconds: the longest wait between attempts (delays double)
    login_failures_per_address: int = Field(100, ge=1)  # wrong passwords from one address in 15 minutes
    webchat_messages_per_visitor: int = Field(20, ge=1)  # web-chat messages one visitor may send per minute
    webchat_messages_per_address: int = Field(120, ge=1)  # ... and all visitors of one client address
    metrics_token: SecretStr = SecretStr("")  # when set, /metrics needs `Authorization: Bearer <token>`

    # demo admin, created by `huike seed-demo`
    demo_admin_username: str = "admin"
    demo_admin_password: SecretStr = SecretStr(DEMO_ADMIN_PASSWORD)

    # NLU
    nlu_backend: Literal["embedded", "rasa"] = "embedded"
    nlu_model_path: Path | None = None  # default: <data_dir>/nlu-model.pkl
    rasa_url: str = "http://127.0.0.1:5005"
    rasa_timeout: float = 1.5

    # WeChat Official Account (account "default")
    wechat_token: str = ""
    wechat_app_id: str = ""
    wechat_app_secret: SecretStr = SecretStr("")
    wechat_aes_key: SecretStr = SecretStr("")  # EncodingAESKey; empty = plaintext mode
    wechat_api_base: str = WECHAT_API_BASE
    wechat_reply_budget: float = 4.0  # seconds of WeChat's 5 s we may spend before falling back to the API
    wechat_replay_window: int = 300  # seconds a callback timestamp may differ from our clock
    wechat_dedup_ttl: int = 3600  # seconds a callback's dedup key is kept in Redis (WeChat retries within ~15 s)
    wechat_fallback_template_id: str = ""  # template used after 45015 (48-hour window passed); empty = fail
    wechat_max_api_replies: int = 20  # customer-service messages per customer message (WeChat: 45047)
    wechat_kf_max_replies: int = 5  # 微信客服: messages per customer message
    wechat_api_timeout: float = 5.0

    # WeCom (企业微信) application (account "default")
    wecom_corp_id: str = ""
    wecom_agent_id: str = ""
    wecom_secret: SecretStr = SecretStr("")
    wecom_token: str = ""
    wecom_aes_key: SecretStr = SecretStr("")
    wecom_api_base: str = WECOM_API_BASE

    # Complaint tickets: taxonomy, severity rules, SLA, working hours (default: config/tickets.yml)
    tickets_config: Path | None = None

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, url: str) -> str:
        if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("HUIKE_DATABASE_URL must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return url

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, url: str | None) -> str | None:
        if url and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("HUIKE_REDIS_URL must start with redis://, rediss:// or unix://")
        return url or None

    @model_validator(mode="after")
    def _production_needs_secrets(self) -> Settings:
        if self.env == "production" and not looks_random(self.secret_key.get_secret_value()):
            raise ValueError(
                f"HUIKE_SECRET_KEY must be at least {MIN_SECRET_BYTES} random characters in production "
                "(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        if self.workers > 1 and (self.is_sqlite or not self.redis_url):
            raise ValueError("HUIKE_WORKERS > 1 needs PostgreSQL (HUIKE_DATABASE_URL) and Redis (HUIKE_REDIS_URL)")
        return self

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def is_default_password(self, password: str) -> bool:
        """A password anyone can read in the README or the environment of a demo: refused in production."""
        return password in (DEMO_ADMIN_PASSWORD, self.demo_admin_password.get_secret_value())

    @property
    def presence_grace(self) -> timedelta:
        return timedelta(seconds=self.presence_grace_seconds)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def model_path(self) -> Path:
        return self.nlu_model_path or self.data_dir / "nlu-model.pkl"

    @property
    def public_url(self) -> str:
        return f"http://{self.host}:{self.port}"


def looks_random(secret: str) -> bool:
    """At least 32 bytes, not the dev default, and varied enough to be random (a repeated word or a
    run of one character fails): 12+ distinct characters and 3+ bits of Shannon entropy per character.
    `secrets.token_urlsafe(32)` scores ~5 bits and `secrets.token_hex(32)` ~3.9."""
    if len(secret.encode()) < MIN_SECRET_BYTES or DEV_SECRET in secret:
        return False
    counts = Counter(secret)
    entropy = -sum(n / len(secret) * math.log2(n / len(secret)) for n in counts.values())
    return len(counts) >= 12 and entropy >= 3.0
