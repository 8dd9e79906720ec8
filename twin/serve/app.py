"""The API: a FastAPI app over the store, built by :func:`create_app` from a
:class:`ServeConfig`.

Every write goes the same way, and refusals happen in this order, before anything is stored:
the token (401), its scope (403), the caller's rate (429), the media type (415), the body's
size while it streams (413), the JSON (400), the document's schema (422), the
``Idempotency-Key`` (409 when reused for another body). Then the write joins the group
commit (:mod:`twin.serve.writer`) and the answer is sent only after its transaction
committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from twin.errors import InputError
from twin.serve import auth, limits
from twin.serve.metrics import Metrics, MetricsMiddleware
from twin.serve.models import (
    CHAOS_BODY_SCHEMA,
    ChaosRecordIn,
    ExportMetricsServiceRequest,
    ExportResponse,
    ExportTraceServiceRequest,
    Health,
    IncidentPage,
    IncidentsIn,
    IngestAnswer,
    Page,
    SimulationIn,
    utc_instant,
)
from twin.serve.models import Problem as ProblemModel
from twin.serve.problems import MEDIA_TYPE, Problem, from_input_error, install, validation_problem
from twin.serve.ratelimit import RateLimiter
from twin.serve.writer import Writer
from twin.store import Store, parse_chaos
from twin.store.documents import Write, content_hash, find_answer, mitigations_of, page
from twin.store.schema import ChaosResultRow

log = logging.getLogger("twin.serve")


@dataclass(frozen=True)
class ServeConfig:
    """Everything the server needs: the database URL, the tokens file, and the limits
    (bytes, keys per JSON object, requests per second and burst per token, writes per
    commit)."""

    db: str
    tokens: Path
    max_body: int = limits.MAX_BODY_BYTES
    max_keys: int = limits.MAX_KEYS
    rate: float = 100.0
    burst: float = 200.0
    max_batch: int = 256


class _State:
    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.store = Store(config.db)
        self.auth = auth.Authenticator(config.tokens)
        self.limiter = RateLimiter(config.rate, config.burst)
        self.metrics = Metrics()
        self.writer = Writer(self.store, max_batch=config.max_batch, on_commit=self._count)

    def _count(self, writes: list[Write]) -> None:
        for w in writes:
            n = sum(1 for s in w.statuses if s != "already_existed")
            if n:
                self.metrics.rows_written(w.table, n)


Limit = Annotated[int, Query(ge=1, le=1000, description="items per page")]
Cursor = Annotated[
    int, Query(ge=0, le=2**53, description="next_cursor of the previous page; 0 = start")
]
Filter = Annotated[str | None, Query(max_length=500)]

_PROBLEM_CODES = {
    "write": (400, 401, 403, 409, 413, 415, 422, 429, 503),
    "read": (401, 403, 422, 429, 503),
}


def create_app(config: ServeConfig) -> FastAPI:
    """The app; the database's tables are made if missing, the tokens file is read now."""
    state = _State(config)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await state.writer.start()
        try:
            yield
        finally:
            await state.writer.stop()
            state.store.close()

    app = FastAPI(
        title="Shadow Twin API",
        version="1",
        summary="Chaos results, simulations, incidents and OTLP telemetry in; failure modes, "
        "chaos results, alerts and changes out.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.twin = state
    install(app)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    bodies: dict[str, dict[str, Any]] = {}

    def _caller(request: Request, need: auth.Scope) -> auth.Caller:
        found = state.auth.check(request.headers.get("authorization"))
        if found == "missing":
            raise Problem(
                401,
                "unauthorized",
                "a bearer token is required (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": 'Bearer realm="twin"'},
            )
        if found == "invalid":
            raise Problem(
                401,
                "unauthorized",
                "the token is unknown, revoked or expired",
                headers={"WWW-Authenticate": 'Bearer realm="twin", error="invalid_token"'},
            )
        if not found.may(need):
            raise Problem(
                403,
                "forbidden",
                f"this token's scope is {found.scope!r}; this endpoint needs {need!r}",
                headers={"WWW-Authenticate": 'Bearer realm="twin", error="insufficient_scope"'},
            )
        wait = state.limiter.take(found.token_id)
        if wait is not None:
            raise Problem(
                429,
                "rate-limited",
                f"more than {config.rate:g} requests a second for this token",
                headers={"Retry-After": RateLimiter.retry_after(wait)},
            )
        return found

    async def _body(request: Request) -> tuple[Any, str]:
        limits.check_media_type(request)
        raw = await limits.read_body(request, config.max_body)
        doc = limits.parse_json(raw, config.max_keys)
        return doc, content_hash(doc)

    async def _db(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except OperationalError:
            log.exception("the database is unavailable")
            raise Problem(
                503,
                "unavailable",
                "the database is unavailable; nothing was stored",
                headers={"Retry-After": "5"},
            ) from None

    async def _ingest(
        request: Request,
        endpoint: str,
        build: Callable[[Any, str], Write],
        replay: Callable[[Any], JSONResponse],
        headers: Callable[[Write], dict[str, str]] | None = None,
    ) -> JSONResponse:
        caller = _caller(request, "write")
        doc, doc_hash = await _body(request)
        key = request.headers.get("idempotency-key")
        request_hash = content_hash([endpoint, doc]) if key is not None else ""
        if key is not None:
            if not (0 < len(key) <= 200) or not key.isprintable() or not key.isascii():
                raise Problem(
                    400, "bad-request", "Idempotency-Key: expected 1 to 200 printable ASCII"
                )
            kept = await _db(find_answer, state.store, caller.token_id, key)
            if kept is not None:
                if kept["request_hash"] != request_hash:
                    raise Problem(
                        409,
                        "idempotency-key-reused",
                        "this Idempotency-Key was used for another request; use a new key",
                    )
                return replay(kept)
        write = build(doc, doc_hash)
        if key is not None:
            write.idempotency = {
                "token_id": caller.token_id,
                "key": key,
                "endpoint": endpoint,
                "request_hash": request_hash,
            }
        try:
            done = await state.writer.submit(write)
        except OperationalError:
            raise Problem(
                503,
                "unavailable",
                "the database is unavailable; nothing was stored",
                headers={"Retry-After": "5"},
            ) from None
        assert done.answered is not None
        code, body = done.answered
        return JSONResponse(
            body, status_code=code, headers=headers(done) if headers is not None else None
        )

    def _answer(keys: list[str], doc_hash: str) -> Callable[[Write], tuple[int, Any]]:
        def build(w: Write) -> tuple[int, Any]:
            records = [{"key": k, "status": s} for k, s in zip(keys, w.statuses, strict=True)]
            created = sum(1 for s in w.statuses if s == "created")
            updated = sum(1 for s in w.statuses if s == "updated")
            body = IngestAnswer(
                created=created,
                updated=updated,
                already_existed=len(w.statuses) - created - updated,
                records=records,
                document=f"sha256:{doc_hash}",
            ).model_dump()
            return (201 if created or updated else 200), body

        return build

    def _replay(kept: Any) -> JSONResponse:
        body = dict(kept["response"])
        records = [{**r, "status": "already_existed"} for r in body.get("records", [])]
        body.update(
            records=records, created=0, updated=0, already_existed=len(records), replayed=True
        )
        return JSONResponse(body, status_code=200, headers={"Idempotent-Replayed": "true"})

    def _validate(model: type[BaseModel], doc: Any) -> Any:
        if not isinstance(doc, dict):
            raise Problem(
                422,
                "invalid-document",
                f"(document): expected a JSON object, got {type(doc).__name__}",
                errors=[{"path": "(document)", "message": "expected a JSON object"}],
            )
        try:
            return model.model_validate(doc)
        except ValidationError as exc:
            raise validation_problem(list(exc.errors())) from None

    # -- chaos results -----------------------------------------------------------------------

    def _chaos(doc: Any, doc_hash: str) -> Write:
        items = doc if isinstance(doc, list) else [doc]
        if isinstance(doc, list) and not 0 < len(doc) <= 1000:
            raise Problem(422, "invalid-document", "expected 1 to 1000 chaos results in a list")
        for i, item in enumerate(items):
            plain = isinstance(item, dict) and "test_id" in item and "experiment" not in item
            if plain and "chaoslib-version" not in item:
                try:
                    ChaosRecordIn.model_validate(item)
                except ValidationError as exc:
                    errors = [
                        {**e, "loc": ((i,) if isinstance(doc, list) else ()) + tuple(e["loc"])}
                        for e in exc.errors()
                    ]
                    raise validation_problem(errors) from None
        try:
            records = parse_chaos(doc, f"sha256:{doc_hash}")
        except InputError as exc:
            raise from_input_error(exc) from None
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            raise Problem(
                422,
                "invalid-document",
                f"not a chaos result this server can read ({type(exc).__name__})",
            ) from None
        _fits(records)
        keys = [f"{r['format']}/{r['test_id']}/{r['started_at']}" for r in records]
        return Write(
            "chaos_results",
            records,
            raw={"kind": "chaos-result", "content_hash": doc_hash, "document": doc},
            answer=_answer(keys, doc_hash),
        )

    @app.post(
        "/v1/chaos-results",
        response_model=IngestAnswer,
        status_code=201,
        summary="Store chaos results (plain records, Chaos Toolkit, Litmus, Chaos Mesh)",
    )
    async def post_chaos_results(request: Request) -> JSONResponse:
        return await _ingest(request, "chaos-results", _chaos, _replay)

    bodies["/v1/chaos-results"] = CHAOS_BODY_SCHEMA

    # -- simulations -------------------------------------------------------------------------

    def _simulation(doc: Any, doc_hash: str) -> Write:
        sim = _validate(SimulationIn, doc)
        row = {
            "content_hash": doc_hash,
            "name": sim.name,
            "tool": sim.tool,
            "document": doc,
        }
        return Write("simulations", [row], answer=_answer([sim.name], doc_hash))

    @app.post(
        "/v1/simulations",
        response_model=IngestAnswer,
        status_code=201,
        summary="Store an external simulation (parameters, events, time series, metadata)",
    )
    async def post_simulations(request: Request) -> JSONResponse:
        return await _ingest(request, "simulations", _simulation, _replay)

    bodies["/v1/simulations"] = {"$ref": "#/components/schemas/SimulationIn"}

    # -- incidents ---------------------------------------------------------------------------

    def _incidents(doc: Any, doc_hash: str) -> Write:
        found = _validate(IncidentsIn, doc)
        rows, keys = [], []
        for given, inc in zip(doc["incidents"], found.incidents, strict=True):
            t = utc_instant(inc.time)
            rows.append(
                {
                    "content_hash": content_hash(given),
                    "time": t,
                    "service": inc.service,
                    "fault_kind": inc.kind(),
                    "symptom": inc.symptom,
                    "cause": inc.cause,
                    "duration_seconds": inc.seconds(),
                    "intensity": inc.intensity,
                    "document": given,
                }
            )
            keys.append(f"{inc.service}/{t}")
        return Write("incidents", rows, answer=_answer(keys, doc_hash))

    @app.post(
        "/v1/incidents",
        response_model=IngestAnswer,
        status_code=201,
        summary="Store incidents (the shape `twin risk --history` reads)",
    )
    async def post_incidents(request: Request) -> JSONResponse:
        return await _ingest(request, "incidents", _incidents, _replay)

    bodies["/v1/incidents"] = {"$ref": "#/components/schemas/IncidentsIn"}

    # -- OTLP --------------------------------------------------------------------------------

    def _otlp(signal: str, model: type[Any]) -> Callable[[Any, str], Write]:
        def build(doc: Any, doc_hash: str) -> Write:
            req = _validate(model, doc)
            row = {
                "signal": signal,
                "content_hash": doc_hash,
                "items": req.items(),
                "document": doc,
            }

            return Write("telemetry_batches", [row], answer=lambda _: (200, {}))

        return build

    def _stored(w: Write) -> dict[str, str]:
        return {"Twin-Stored": w.statuses[0]}

    def _otlp_replay(_: Any) -> JSONResponse:
        return JSONResponse(
            {},
            status_code=200,
            headers={"Twin-Stored": "already_existed", "Idempotent-Replayed": "true"},
        )

    @app.post(
        "/v1/otlp/traces",
        response_model=ExportResponse,
        response_model_exclude_none=True,
        summary="OTLP/HTTP traces, JSON encoding (an OpenTelemetry collector's otlphttp "
        "exporter with traces_endpoint pointing here)",
    )
    async def post_otlp_traces(request: Request) -> JSONResponse:
        return await _ingest(
            request,
            "otlp-traces",
            _otlp("traces", ExportTraceServiceRequest),
            _otlp_replay,
            _stored,
        )

    bodies["/v1/otlp/traces"] = {"$ref": "#/components/schemas/ExportTraceServiceRequest"}

    @app.post(
        "/v1/otlp/metrics",
        response_model=ExportResponse,
        response_model_exclude_none=True,
        summary="OTLP/HTTP metrics, JSON encoding",
    )
    async def post_otlp_metrics(request: Request) -> JSONResponse:
        return await _ingest(
            request,
            "otlp-metrics",
            _otlp("metrics", ExportMetricsServiceRequest),
            _otlp_replay,
            _stored,
        )

    bodies["/v1/otlp/metrics"] = {"$ref": "#/components/schemas/ExportMetricsServiceRequest"}

    # -- reading -----------------------------------------------------------------------------

    async def _page(
        request: Request, table: str, limit: int, cursor: int, filters: dict[str, Any], **kw: Any
    ) -> tuple[list[dict[str, Any]], int | None]:
        _caller(request, "read")
        given = [(k, v) for k, v in filters.items() if v is not None]
        result: tuple[list[dict[str, Any]], int | None] = await _db(
            page, state.store, table, limit=limit, cursor=cursor, filters=given, **kw
        )
        return result

    @app.get("/v1/chaos-results", response_model=Page, summary="Stored chaos results")
    async def get_chaos_results(
        request: Request,
        limit: Limit = 100,
        cursor: Cursor = 0,
        format: Filter = None,
        test_id: Filter = None,
        passed: bool | None = None,
    ) -> Page:
        items, nxt = await _page(
            request,
            "chaos_results",
            limit,
            cursor,
            {"format": format, "test_id": test_id, "passed": passed},
        )
        return Page(items=items, next_cursor=nxt)

    @app.get(
        "/v1/failure-modes",
        response_model=Page,
        summary="Failure modes found by campaigns, with their recommended mitigations",
    )
    async def get_failure_modes(
        request: Request,
        limit: Limit = 100,
        cursor: Cursor = 0,
        topology: Filter = None,
        policy: Filter = None,
        fault_kind: Filter = None,
        target: Filter = None,
        min_severity: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    ) -> Page:
        items, nxt = await _page(
            request,
            "failure_modes",
            limit,
            cursor,
            {"topology": topology, "policy": policy, "fault_kind": fault_kind, "target": target},
            min_filters=[("severity", min_severity)] if min_severity is not None else [],
        )
        mits = await _db(mitigations_of, state.store, [int(i["id"]) for i in items])
        return Page(
            items=[{**i, "mitigations": mits.get(int(i["id"]), [])} for i in items],
            next_cursor=nxt,
        )

    @app.get("/v1/incidents", response_model=IncidentPage, summary="Stored incidents")
    async def get_incidents(
        request: Request,
        limit: Limit = 100,
        cursor: Cursor = 0,
        service: Filter = None,
        fault_kind: Filter = None,
    ) -> IncidentPage:
        items, nxt = await _page(
            request, "incidents", limit, cursor, {"service": service, "fault_kind": fault_kind}
        )
        rows = [
            {
                "time": i["time"],
                "service": i["service"],
                "fault_kind": i["fault_kind"],
                "symptom": i["symptom"],
                "cause": i["cause"],
                "duration": i["duration_seconds"],
                "intensity": i["intensity"],
                "id": i["id"],
            }
            for i in items
        ]
        return IncidentPage(incidents=rows, next_cursor=nxt)

    @app.get("/v1/alerts", response_model=Page, summary="Alerts raised about the live system")
    async def get_alerts(
        request: Request,
        limit: Limit = 100,
        cursor: Cursor = 0,
        service: Filter = None,
        failure_mode: Filter = None,
        severity: Filter = None,
    ) -> Page:
        items, nxt = await _page(
            request,
            "alerts",
            limit,
            cursor,
            {"service": service, "failure_mode": failure_mode, "severity": severity},
        )
        return Page(items=items, next_cursor=nxt)

    @app.get("/v1/changes", response_model=Page, summary="Changes judged by the twin")
    async def get_changes(
        request: Request,
        limit: Limit = 100,
        cursor: Cursor = 0,
        name: Filter = None,
        verdict: Filter = None,
    ) -> Page:
        items, nxt = await _page(
            request, "changes", limit, cursor, {"name": name, "verdict": verdict}
        )
        return Page(items=items, next_cursor=nxt)

    # -- the server itself -------------------------------------------------------------------

    def _ping() -> str:
        with state.store.engine.connect() as c:
            c.execute(text("SELECT 1"))
        return str(state.store.engine.dialect.name)

    @app.get(
        "/healthz",
        response_model=Health,
        summary="Liveness: the server answers and reaches its database",
        responses={503: {"model": ProblemModel}},
    )
    async def healthz() -> Health:
        name = await _db(_ping)
        return Health(status="ok", database=name)

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        summary="Request counts and latencies, Prometheus text format",
    )
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(
            state.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    app.openapi = _openapi_builder(app, bodies)  # type: ignore[method-assign]
    return app


def _fits(records: list[dict[str, Any]]) -> None:
    """Every text value fits its column, so SQLite and PostgreSQL store the same records
    (PostgreSQL refuses a longer value; SQLite would keep it)."""
    for i, r in enumerate(records):
        for col in ChaosResultRow.__table__.columns:
            length = getattr(col.type, "length", None)
            value = r.get(col.name)
            if length and isinstance(value, str) and len(value) > length:
                raise Problem(
                    422,
                    "invalid-document",
                    f"record {i}: {col.name} is {len(value)} characters; at most {length}",
                    errors=[{"path": col.name, "message": f"at most {length} characters"}],
                )


def _openapi_builder(app: FastAPI, bodies: dict[str, dict[str, Any]]) -> Callable[[], Any]:
    """The OpenAPI document: request bodies from the models (the routes read their bodies
    themselves, to bound them while they stream), problem+json for every refusal, and the
    bearer scheme."""

    def build() -> Any:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        comps = doc.setdefault("components", {})
        schemas = comps.setdefault("schemas", {})
        for model in (
            ChaosRecordIn,
            SimulationIn,
            IncidentsIn,
            ExportTraceServiceRequest,
            ExportMetricsServiceRequest,
            ProblemModel,
        ):
            js = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(js.pop("$defs", {}))
            schemas[model.__name__] = js
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        comps["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        problem = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path, ops in doc["paths"].items():
            for method, op in ops.items():
                responses = op.setdefault("responses", {})
                responses.pop("422", None)
                if path in ("/healthz", "/metrics", "/openapi.json"):
                    if path == "/healthz":
                        responses["503"] = {"description": "Unavailable", "content": problem}
                    continue
                op["security"] = [{"bearer": []}]
                kind = "write" if method == "post" else "read"
                for code in _PROBLEM_CODES[kind]:
                    responses[str(code)] = {"description": "Refused", "content": problem}
                if method == "post":
                    op["requestBody"] = {
                        "required": True,
                        "content": {"application/json": {"schema": bodies[path]}},
                    }
                    op["parameters"] = [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                        }
                    ]
                    ok = responses.get("201") or responses.get("200")
                    if ok is not None and path.startswith("/v1/otlp/"):
                        ok["headers"] = {
                            "Twin-Stored": {
                                "schema": {
                                    "type": "string",
                                    "enum": ["created", "already_existed"],
                                }
                            }
                        }
                    if "201" in responses:
                        responses["200"] = {
                            "description": "Nothing new: every record already existed",
                            "content": responses["201"]["content"],
                        }
        app.openapi_schema = doc
        return doc

    return build


__all__ = ["ServeConfig", "create_app"]
