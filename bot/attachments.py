"""Photos customers send (web-chat uploads; the complaint flow asks for one), stored under data_dir/uploads.

Only JPEG, PNG, WebP and GIF up to `MAX_BYTES`, recognised by their first bytes (the declared type must
agree), stored by content hash: a name says nothing about the customer, can't be guessed, and can't
climb out of the folder. Messages refer to a photo by that name in `payload["image"]`.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

MAX_BYTES = 5 * 1024 * 1024
TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif"}
NAME = re.compile(r"^[0-9a-f]{64}\.(jpg|png|webp|gif)$")
_MEDIA = {ext: kind for kind, ext in TYPES.items()}


class BadImage(ValueError):
    """Not a photo we accept; the message says why, in the customer's words."""


@dataclass(frozen=True, slots=True)
class StoredImage:
    name: str
    content_type: str
    size: int

    def as_payload(self) -> dict[str, object]:
        return {"name": self.name, "type": self.content_type, "size": self.size}


def sniff(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def folder(data_dir: Path) -> Path:
    return data_dir / "uploads"


async def store(data_dir: Path, data: bytes, declared: str) -> StoredImage:
    if not data:
        raise BadImage("图片是空的")
    if len(data) > MAX_BYTES:
        raise BadImage(f"图片不能超过 {MAX_BYTES // (1024 * 1024)} MB")
    kind = sniff(data)
    if kind is None or declared.split(";")[0].strip().lower() != kind:
        raise BadImage("只支持 JPG、PNG、WebP、GIF 图片")
    name = f"{hashlib.sha256(data).hexdigest()}.{TYPES[kind]}"
    path = folder(data_dir) / name
    await asyncio.to_thread(_write, path, data)
    return StoredImage(name, kind, len(data))


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():  # same bytes, same name: already there
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)


def locate(data_dir: Path, name: str) -> tuple[Path, str] | None:
    """The stored file and its media type, or None for a name we would never have given out."""
    if not NAME.match(name):
        return None
    path = folder(data_dir) / name
    return (path, _MEDIA[name.rsplit(".", 1)[1]]) if path.is_file() else None
