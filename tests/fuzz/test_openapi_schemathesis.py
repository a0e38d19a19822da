"""schemathesis against the app's own `/api/v1/openapi.json`, signed in as an agent and as an admin.

Every operation of the live document gets a bounded number of generated cases (schema-valid and
schema-breaking ones). Each answer must not be a 5xx, must have a documented status code and content
type, and its body must match the documented schema. `make fuzz` (HUIKE_FUZZ_EXAMPLES) runs many more.

Each role runs against its own app and emptied database, so nothing one role does reaches the other.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema_rs
import pytest
import requests
import schemathesis
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bot.keys import db_key
from bot.web.auth import CSRF_HEADER, SESSION_COOKIE, login_policy_key
from config.settings import Settings
from models import UserCreate
from scrm.audit import Actor
from scrm.db import SessionFactory, transaction
from scrm.users import create_user
from tests.conftest import make_settings
from tests.fuzz.conftest import EXAMPLES, FUZZ
from tests.fuzz.test_fuzz_http import LiveApp

# 60 (the `make test` budget of the other fuzz tests) -> 7 cases per operation and role; `make fuzz` -> 375.
CASES_PER_OPERATION = max(4, EXAMPLES // 8)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
PASSWORD = "secret-pass-1"

# Operations that can end the very session the run uses (logging out here or everywhere; changing one's own
# password, through /auth/password or an admin's PUT on their own user). They run after the others, and after
# each of their cases the session is checked: when it is gone the user signs in again (or, when the case
# changed the password, a new user of the same role does), so later cases still run signed in. Nothing else
# can lock the run out: the app refuses an admin disabling or demoting themself. Login runs last.
SESSION_ENDING = {"POST /api/v1/auth/logout", "POST /api/v1/auth/password", "PUT /api/v1/admin/users/{user_id}"}
LAST = {"POST /api/v1/auth/login"}


@dataclass
class SignedIn:
    """A staff member's session on the live app: cookie and CSRF token, renewed when a case ends it."""

    live: LiveApp
    role: str
    http: requests.Session = field(default_factory=requests.Session)
    username: str = ""
    cookies: dict[str, str] = field(default_factory=dict)
    csrf: str = ""
    renewals: int = 0

    def sign_in_as_new_user(self) -> None:
        self.username = f"{self.role}-{uuid.uuid4().hex[:8]}"
        on_app_loop(self.live, _create_staff(self.live, self.username, self.role))
        assert self.sign_in()

    def sign_in(self) -> bool:
        body = {"username": self.username, "password": PASSWORD}
        resp = self.http.post(f"{self.live.url}/api/v1/auth/login", json=body, timeout=30)
        if resp.status_code != 200:
            return False
        self.cookies = {SESSION_COOKIE: resp.cookies[SESSION_COOKIE]}
        self.csrf = resp.json()["csrf_token"]
        return True

    def headers_for(self, method: str) -> dict[str, str]:
        return {} if method in ("GET", "HEAD") else {CSRF_HEADER: self.csrf}

    def still_signed_in(self) -> bool:
        return self.http.get(f"{self.live.url}/api/v1/auth/me", cookies=self.cookies, timeout=30).status_code == 200

    def renew_if_ended(self) -> None:
        """Signed out: sign in again; the password was changed by the case: carry on as a new user."""
        if not self.still_signed_in():
            self.renewals += 1
            if not self.sign_in():
                self.sign_in_as_new_user()


def on_app_loop(live: LiveApp, coro: Any) -> Any:
    return asyncio.run_coroutine_threadsafe(coro, live.loop).result(60)


async def _create_staff(live: LiveApp, username: str, role: str) -> None:
    assert live.runner is not None
    async with transaction(live.runner.app[db_key]) as session:
        data = UserCreate(username=username, password=PASSWORD, role=role)
        await create_user(session, data=data, actor=Actor.system("schemathesis"))


@pytest.fixture
def live_api(
    database_url: str, tmp_path: Path, db: SessionFactory, nlu_model_path: Path, seeded_faq: int
) -> Iterator[LiveApp]:
    settings: Settings = make_settings(database_url, tmp_path, nlu_model_path=nlu_model_path,
                                       # replays must answer alike: no web-chat limit filling up mid-run
                                       webchat_messages_per_visitor=10**6, webchat_messages_per_address=10**6)
    with LiveApp(settings) as live:
        assert live.runner is not None
        # The login throttle is tested in tests/security; here fuzzed logins must not lock out our renewals.
        live.runner.app[login_policy_key].attempts_per_window = 1_000_000
        # A customer with a conversation waiting for an agent, so generated ids (1, 2, …) reach real rows
        # in the console and customer routes too, not only in the FAQ (seeded) ones.
        with requests.Session() as visitor:  # keeps the visitor cookie: one customer, one conversation
            for n, text in enumerate(["多久发货？", "转人工"]):
                body = {"text": text, "client_msg_id": f"seed-{n}"}
                posted = visitor.post(f"{live.url}/api/v1/webchat/messages", json=body, timeout=30)
                assert posted.status_code == 201, posted.text
        yield live


def uses_tuples(document: dict[str, Any], operation: Any) -> bool:
    return "prefixItems" in json.dumps(document["paths"][operation.path][operation.method.lower()]["responses"])


def body_matches_document(document: dict[str, Any]) -> Callable[..., bool]:
    """Response body vs the documented schema, validated as OpenAPI 3.1 says (JSON Schema 2020-12).

    Stands in for `response_schema_conformance` on operations whose schema has a tuple (`prefixItems`, e.g.
    `top_root_causes: list[tuple[str, int]]`): schemathesis 4.32 rewrites it into Draft 4's `items: [...]` and
    then rejects its own rewrite as an invalid 3.1 schema, so its check cannot run there."""

    def check(ctx: Any, response: Any, case: Any) -> bool:
        responses = document["paths"][case.operation.path][case.operation.method.lower()]["responses"]
        declared = responses.get(str(response.status_code)) or responses.get(f"{response.status_code // 100}XX", {})
        schema = declared.get("content", {}).get("application/json", {}).get("schema")
        if schema is not None:
            validator = jsonschema_rs.Draft202012Validator(
                {**schema, "components": document["components"]}, validate_formats=True
            )
            found = validator.iter_errors(response.json())
            errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in found]
            assert not errors, "Response violates schema: " + "; ".join(errors[:5])
        return True

    return check


def in_run_order(operations: list[Any]) -> list[Any]:
    def rank(operation: Any) -> int:
        return 2 if operation.label in LAST else 1 if operation.label in SESSION_ENDING else 0

    return sorted(operations, key=rank)  # stable: the document's order within each group


def fuzz_operation(operation: Any, staff: SignedIn, document: dict[str, Any]) -> None:
    """CASES_PER_OPERATION generated cases for one operation; raises on the first failing one (shrunk)."""
    checks = CHECKS
    if uses_tuples(document, operation):
        checks = [c for c in CHECKS if c is not response_schema_conformance] + [body_matches_document(document)]
    cases = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)
    after_case: Callable[[], None] = staff.renew_if_ended if operation.label in SESSION_ENDING else lambda: None

    @hypothesis_settings(FUZZ, max_examples=CASES_PER_OPERATION)
    @given(case=cases)
    def run(case: Any) -> None:
        try:
            response = case.call(
                base_url=staff.live.url, session=staff.http, headers=staff.headers_for(operation.method.upper()),
                cookies=staff.cookies, timeout=30,
            )  # fmt: skip
            case.validate_response(response, checks=checks)
        finally:
            after_case()

    run()


@pytest.mark.slow
@pytest.mark.parametrize("role", ["agent", "admin"])
def test_every_operation_answers_as_documented(live_api: LiveApp, role: str) -> None:
    staff = SignedIn(live_api, role)
    staff.sign_in_as_new_user()
    document = requests.get(f"{live_api.url}/api/v1/openapi.json", cookies=staff.cookies, timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    operations = in_run_order([result.ok() for result in schema.get_all_operations()])
    assert len(operations) > 80  # the whole API, not an empty document

    failures: list[str] = []
    seconds: dict[str, float] = {}
    for operation in operations:
        started = time.perf_counter()
        try:
            fuzz_operation(operation, staff, document)
        except (Exception, BaseExceptionGroup) as exc:  # every failing operation, not only the first
            # (schemathesis' FailureGroup is a BaseExceptionGroup)
            failures.append(f"{operation.label}: {exc}")
        seconds[operation.label] = time.perf_counter() - started
    slowest = ", ".join(f"{label} {s:.1f}s" for label, s in sorted(seconds.items(), key=lambda i: -i[1])[:4])
    print(f"\nschemathesis[{role}]: {len(operations)} operations x {CASES_PER_OPERATION} cases in"
          f" {sum(seconds.values()):.1f}s, {staff.renewals} session renewals; slowest: {slowest}")  # fmt: skip
    assert not failures, "\n\n".join(failures)


def test_the_tuple_aware_check_rejects_a_body_off_the_schema() -> None:
    pair = {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "minItems": 2, "maxItems": 2}
    ok = {"description": "OK", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/R"}}}}
    report = {"type": "object", "required": ["top"], "properties": {"top": {"type": "array", "items": pair}}}
    document = {"paths": {"/r": {"get": {"responses": {"200": ok}}}}, "components": {"schemas": {"R": report}}}
    check = body_matches_document(document)
    case = SimpleNamespace(operation=SimpleNamespace(path="/r", method="GET"))

    def answer(body: Any) -> Any:
        return SimpleNamespace(status_code=200, json=lambda: body)

    assert check(None, answer({"top": [["退款", 3]]}), case)
    with pytest.raises(AssertionError, match="Response violates schema"):
        check(None, answer({"top": [[3, "退款"]]}), case)
