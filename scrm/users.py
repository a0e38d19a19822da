"""Staff users: argon2 password hashes, audited creation and changes."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import User, UserCreate, UserUpdate
from scrm.audit import Actor, record_audit
from scrm.errors import Conflict, NotFound

_hasher = PasswordHasher()


def normalize_skills(text: str) -> str:
    """ "售后， 物流,售后" -> "售后,物流": one comma-separated list, no blanks or repeats (full-width commas too)."""
    names = [s.strip() for s in text.replace("，", ",").replace("、", ",").split(",")]
    return ",".join(dict.fromkeys(n for n in names if n))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def create_user(session: AsyncSession, *, data: UserCreate, actor: Actor) -> User:
    if (await session.exec(select(User).where(User.username == data.username))).first():
        raise Conflict(f"用户名 {data.username} 已存在")
    user = User.model_validate(
        data, update={"password_hash": hash_password(data.password), "skills": normalize_skills(data.skills)}
    )
    session.add(user)
    await session.flush()
    record_audit(
        session,
        actor=actor,
        action="user.create",
        object_type="user",
        object_id=user.id,
        after={**data.model_dump(exclude={"password"}), "skills": user.skills},
    )
    return user


async def update_user(session: AsyncSession, *, user_id: int, data: UserUpdate, actor: Actor) -> tuple[User, bool]:
    """Change a user (role, password, active …), audited; returns (user, sessions_must_end).

    Sessions must end when the password, the role or the active flag changed, so a demoted or
    disabled user loses access at once.
    """
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"用户 {user_id} 不存在")
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    password = changes.pop("password", None)
    if "skills" in changes:
        changes["skills"] = normalize_skills(changes["skills"])
    before = {k: getattr(user, k) for k in changes}
    for key, value in changes.items():
        setattr(user, key, value)
    if password:
        user.password_hash = hash_password(password)
        user.failed_logins, user.locked_until = 0, None
    after = {**changes, **({"password": "changed"} if password else {})}
    record_audit(session, actor=actor, action="user.update", object_type="user", object_id=user_id,
                 before=before, after=after)  # fmt: skip
    return user, bool(password) or any(before.get(k) != changes[k] for k in ("role", "active") if k in changes)
