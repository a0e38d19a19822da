"""REST API plumbing: routes declared with roles and pydantic models; OpenAPI generated from them.

    router = ApiRouter("tickets")

    @router.post("/tickets", roles=STAFF, body=TicketCreate, response=TicketRead, status=201)
    async def create_ticket(request: web.Request, user: User, body: TicketCreate) -> TicketRead: ...

The handler receives the authenticated `user` (None on public routes), the validated `body`
and `query` models when declared, and returns a model, a list of models, a dict or a Response.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any

import orjson
from aiohttp import web
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from bot.web.auth import authorize
from models import Role

API_PREFIX = "/api/v1"
ADMIN = frozenset({Role.ADMIN})
SUPERVISOR = frozenset({Role.SUPERVISOR, Role.ADMIN})
STAFF = frozenset({Role.AGENT, Role.SUPERVISOR, Role.ADMIN})
PUBLIC: frozenset[Role] = frozenset()
INT32_MAX = 2**31 - 1  # ids and counters are INTEGER columns on PostgreSQL
# A date someone types: year 1 or 9999 would overflow when turned into a time range (a 500 otherwise).
Day = Annotated[date, Field(ge=date(1900, 1, 1), le=date(2999, 12, 31))]

ApiHandler = Callable[..., Awaitable[Any]]
operations_key = web.AppKey("api_operations", list)


@dataclass
class Operation:
    method: str
    path: str
    handler: ApiHandler
    roles: frozenset[Role]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    summary: str = ""
    tag: str = ""
    extra_responses: dict[int, str] = field(default_factory=dict)

    @property
    def full_path(self) -> str:
        return API_PREFIX + self.path


class ApiRouter:
    def __init__(self, tag: str = "") -> None:
        self.tag = tag
        self.operations: list[Operation] = []

    def route(
        self, method: str, path: str, *, roles: Iterable[Role], **options: Any
    ) -> Callable[[ApiHandler], ApiHandler]:
        def decorate(handler: ApiHandler) -> ApiHandler:
            summary = options.pop("summary", "") or (handler.__doc__ or "").strip().split("\n")[0]
            self.operations.append(
                Operation(method, path, handler, frozenset(roles), summary=summary, tag=self.tag, **options)
            )
            return handler

        return decorate

    def get(self, path: str, **kw: Any) -> Callable[[ApiHandler], ApiHandler]:
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[ApiHandler], ApiHandler]:
        return self.route("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Callable[[ApiHandler], ApiHandler]:
        return self.route("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> Callable[[ApiHandler], ApiHandler]:
        return self.route("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[ApiHandler], ApiHandler]:
        return self.route("DELETE", path, **kw)

    def install(self, app: web.Application) -> None:
        if operations_key not in app:
            app[operations_key] = []
            app.router.add_get(API_PREFIX + "/openapi.json", _openapi_view)
        for op in self.operations:
            app.router.add_route(op.method, op.full_path, _view(op))
            app[operations_key].append(op)


async def read_json(request: web.Request) -> Any:
    """The request body as JSON; malformed JSON is a 400 with a JSON error.

    A body must say `Content-Type: application/json`: a cross-site HTML form can only send form or
    text/plain bodies (without a CORS preflight), so this is what keeps other sites from posting here."""
    raw = await request.read()
    if raw and request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="请求体须为 JSON（Content-Type: application/json）",
                                           reason="Unsupported Media Type")  # fmt: skip
    try:
        return orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        raise web.HTTPBadRequest(text="请求体不是合法的 JSON", reason="Bad JSON") from None


def parse_model(model: type[BaseModel], data: Any) -> BaseModel:
    if _has_nul(data):  # PostgreSQL text cannot hold NUL: refuse it here instead of failing in the database (500)
        raise web.HTTPUnprocessableEntity(text="参数不合法：包含非法字符（NUL）", reason="Validation Failed")
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        detail = "；".join(f"{_field(e['loc'])}{_message(e)}" for e in exc.errors()[:5])
        raise web.HTTPUnprocessableEntity(text=f"参数不合法：{detail}", reason="Validation Failed") from None
    if _has_huge_int(parsed):  # ids, versions, offsets, counters are INTEGER columns: refuse, don't fail in the db
        raise web.HTTPUnprocessableEntity(text="参数不合法：数值超出范围", reason="Validation Failed")
    return parsed


# Staff read these messages on the pages: pydantic's English is replaced by Chinese per error type.
_MESSAGES: dict[str, str] = {
    "missing": "必填",
    "string_too_short": "至少 {min_length} 个字符",
    "string_too_long": "最多 {max_length} 个字符",
    "too_short": "至少 {min_length} 项",
    "too_long": "最多 {max_length} 项",
    "greater_than_equal": "不能小于 {ge}",
    "greater_than": "必须大于 {gt}",
    "less_than_equal": "不能大于 {le}",
    "less_than": "必须小于 {lt}",
    "int_parsing": "需要整数",
    "int_type": "需要整数",
    "int_from_float": "需要整数",
    "float_parsing": "需要数字",
    "float_type": "需要数字",
    "decimal_parsing": "需要数字",
    "bool_parsing": "需要 是/否",
    "bool_type": "需要 是/否",
    "string_type": "需要文本",
    "dict_type": "需要对象",
    "list_type": "需要列表",
    "enum": "只能是 {expected}",
    "literal_error": "只能是 {expected}",
    "string_pattern_mismatch": "格式不正确",
    "date_parsing": "需要日期（YYYY-MM-DD）",
    "date_from_datetime_parsing": "需要日期（YYYY-MM-DD）",
    "datetime_parsing": "需要时间（ISO 8601）",
    "datetime_from_date_parsing": "需要时间（ISO 8601）",
    "extra_forbidden": "不支持此字段",
}
_FIELDS = {"name": "名称", "text": "内容", "note": "说明", "reason": "原因", "description": "描述", "question": "问题",
           "answer": "答案", "category": "分类", "severity": "级别", "status": "状态", "username": "用户名",
           "password": "密码", "role": "角色", "template": "模板", "conditions": "条件", "tag_name": "标签",
           "send_hour": "发送时间", "limit": "条数", "offset": "起始位置", "version": "版本"}  # fmt: skip


def _field(loc: tuple[Any, ...]) -> str:
    names = [_FIELDS.get(str(part), str(part)) for part in loc if not isinstance(part, int)]
    return f"{'.'.join(names)}：" if names else ""


def _message(error: Any) -> str:
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    if kind == "value_error":  # our own validators speak Chinese already
        return str(ctx.get("error") or error.get("msg", "")).removeprefix("Value error, ")
    template = _MESSAGES.get(kind)
    if template is None:
        return "格式不正确"
    try:
        return template.format(**{k: str(v).replace("'", "").replace(" or ", "、") for k, v in ctx.items()})
    except (KeyError, IndexError):
        return template


def _has_nul(data: Any, depth: int = 0) -> bool:
    if isinstance(data, str):
        return "\x00" in data
    if depth > 32:
        return False
    if isinstance(data, dict):
        return any(_has_nul(k, depth + 1) or _has_nul(v, depth + 1) for k, v in data.items())
    if isinstance(data, list):
        return any(_has_nul(v, depth + 1) for v in data)
    return False


def _has_huge_int(value: Any, depth: int = 0) -> bool:
    """An integer field (of the model or its nested models) beyond what a PostgreSQL INTEGER holds.

    Free-form JSON (dict fields, e.g. customer attributes) is stored as JSON and may hold any number."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return not -INT32_MAX - 1 <= value <= INT32_MAX
    if depth > 8:
        return False
    if isinstance(value, BaseModel):
        return any(_has_huge_int(getattr(value, name), depth + 1) for name in type(value).model_fields)
    if isinstance(value, list | tuple):
        return any(_has_huge_int(v, depth + 1) for v in value)
    return False


def path_id(request: web.Request, name: str) -> int:
    """A row id from the URL: 1..INT32_MAX in ASCII digits; anything else is a 404, never a database error."""
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10 and 0 < int(raw) <= INT32_MAX):
        raise web.HTTPNotFound(text=f"{raw[:40]} 不存在", reason="Not Found")
    return int(raw)


# Every stored time is UTC, but SQLite hands datetimes back naive: say so on the wire ("Z"), as on PostgreSQL,
# so clients (and the documented `date-time` format) never see a time without its offset.
_JSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


def json_response(data: Any, status: int = 200, response: Any = None) -> web.Response:
    """Models are dumped as Python objects and serialized by orjson, so datetimes get the options above."""
    if response is not None and not isinstance(data, dict | list):
        data = TypeAdapter(response).dump_python(data)
    elif isinstance(data, BaseModel):
        data = data.model_dump()
    elif isinstance(data, list):
        data = [d.model_dump() if isinstance(d, BaseModel) else d for d in data]
    body = orjson.dumps(data, default=str, option=_JSON_OPTIONS)
    return web.Response(body=body, status=status, content_type="application/json")


def _view(op: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def view(request: web.Request) -> web.StreamResponse:
        user = await authorize(request, op.roles, state_changing=op.method not in ("GET", "HEAD"))
        kwargs: dict[str, Any] = {"user": user}
        if op.body is not None:
            kwargs["body"] = parse_model(op.body, await read_json(request))
        if op.query is not None:
            kwargs["query"] = parse_model(op.query, dict(request.query))
        result = await op.handler(request, **kwargs)
        if isinstance(result, web.StreamResponse):
            return result
        if result is None:
            return web.Response(status=204)
        return json_response(result, op.status, op.response)

    view.__name__ = op.handler.__name__
    return view


async def _openapi_view(request: web.Request) -> web.Response:
    """The API's map is for signed-in staff only (it lists every route and role)."""
    await authorize(request, STAFF, state_changing=False)
    return web.json_response(openapi_document(request.app[operations_key]))


def openapi_document(operations: list[Operation]) -> dict[str, Any]:
    components: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}

    def schema(t: Any) -> dict[str, Any]:
        generated = TypeAdapter(t).json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
        components.update(generated.pop("$defs", {}))
        return generated

    for op in operations:
        item: dict[str, Any] = {
            "operationId": f"{op.method.lower()}_{op.handler.__name__}",
            "summary": op.summary,
            "tags": [op.tag] if op.tag else [],
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": _path_schema(name)}
                for name in re.findall(r"{(\w+)}", op.path)
            ],
            "responses": {
                str(status): {
                    "description": description,
                    **({"content": {"application/json": {"schema": schema(op.response)}}} if op.response else {}),
                }
                for status, description in {op.status: "OK", **op.extra_responses}.items()
            }
            | {"4XX": {"description": "错误", "content": {"application/json": {"schema": _ERROR}}}},
        }
        if op.roles:
            item["security"] = [{"session": []}]
            item["x-roles"] = sorted(op.roles)
        if op.query is not None:
            for name, prop in schema(op.query).get("properties", {}).items():
                item["parameters"].append({"name": name, "in": "query", "required": False, "schema": prop})
        if op.body is not None:
            item["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema(op.body)}}}
        paths.setdefault(op.full_path, {})[op.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": "Huike 慧客 API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": "huike_session"}},
        },
    }


def _path_schema(name: str) -> dict[str, Any]:
    """`*_id` segments are row ids (see `path_id`); other segments (a tag name) are free text."""
    if name.endswith("_id"):
        return {"type": "integer", "minimum": 1, "maximum": INT32_MAX}
    return {"type": "string"}


_ERROR = {
    "type": "object",
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
    "required": ["code", "message"],
}
