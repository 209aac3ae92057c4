"""The ingestion API under /v1: post an order (idempotent on its external id), a later step, read an order and pages of
orders by status, the problems an operator must see; retry and cancel under the operators' tokens. Every handler
validates, registers and sends; none waits on Keap."""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from admin.web.common import UNAVAILABLE, bearer, ingest, parse_json, read_body, unavailable
from producers.enqueue import OrderConflict, Producer
from worker import pipeline
from worker.contract import OrderInvalid
from worker.ledger import STATUSES

router = APIRouter(prefix="/v1", tags=["orders"])
_LIST_MAX = 500


def _producer(request: Request) -> Producer:
    return request.app.state.producer


def _reader(request: Request) -> None:
    settings = request.app.state.settings
    bearer(request, settings.ingest_tokens, settings.operator_tokens)


def _operator(request: Request) -> None:
    bearer(request, request.app.state.settings.operator_tokens)


def status_url(external_id: str) -> str:
    return f"/v1/orders/{quote(external_id, safe='')}"


def invalid(exc: OrderInvalid) -> JSONResponse:
    """422 with the CLI's texts: each field, what is wrong, and the fix."""
    return JSONResponse({"error": str(exc), "external_id": exc.external_id,
                         "errors": [{"field": e.field, "message": e.message, "fix": e.hint} for e in exc.errors]},
                        status_code=422)


async def _json(request: Request) -> Any:
    settings = request.app.state.settings
    return parse_json(await read_body(request, settings.http_max_body_bytes), settings.http_max_json_depth)


async def _call(request: Request, function, *args, **kwargs) -> Any:
    """Run a blocking producer call off the event loop; Redis away → 503, a bad order → 422, a conflict → 409."""
    try:
        return await ingest(request.app, function, *args, **kwargs)
    except UNAVAILABLE:
        return unavailable()
    except OrderInvalid as exc:
        return invalid(exc)
    except OrderConflict as exc:
        return JSONResponse({"error": str(exc), "external_id": exc.external_id, "status": exc.status,
                             "differences": exc.differences}, status_code=409)
    except LookupError as exc:
        return JSONResponse({"error": str(exc)}, status_code=404)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=422)


@router.post("/orders", status_code=202, responses={200: {"description": "already known with the same content"},
                                                     409: {"description": "other content for this external_id"},
                                                     422: {"description": "invalid: field, message, fix"},
                                                     503: {"description": "Redis away: send again (Retry-After)"}})
async def post_order(request: Request, lane: str = Query("live", pattern="^(live|backfill)$")):
    """One order in the message contract (`keap-orders schema`). 202 with its status URL; the same content again
    answers 200 with the current status; other content for a known external_id answers 409 naming the fields."""
    bearer(request, request.app.state.settings.ingest_tokens)
    body = await _json(request)
    sent = await _call(request, _producer(request).enqueue_order, body, lane, source="api")
    if isinstance(sent, JSONResponse):
        return sent
    url = status_url(sent.external_id)
    answer = {"external_id": sent.external_id, "status": sent.status, "accepted": sent.sent, "status_url": url}
    return JSONResponse(answer, status_code=202 if sent.sent else 200, headers={"Location": url})


@router.post("/orders/{external_id}/steps/{step}", status_code=202)
async def post_step(request: Request, external_id: str, step: str):
    """`enqueue_step` over HTTP: e.g. a later payment, `{"payments": [{...}]}` to `.../steps/record_payment`."""
    bearer(request, request.app.state.settings.ingest_tokens)
    if step not in pipeline.STEP_NAMES:
        raise HTTPException(404, f"step {step!r}: use one of {', '.join(pipeline.STEP_NAMES)}")
    body = await _json(request) if int(request.headers.get("content-length") or 0) else {}
    if not isinstance(body, dict):
        raise HTTPException(422, "the body is a JSON object of additions, e.g. {\"payments\": [...]}")
    sent = await _call(request, _producer(request).enqueue_step, step, external_id, "live", **body)
    if isinstance(sent, JSONResponse):
        return sent
    return JSONResponse({"external_id": external_id, "status": sent.status, "step": step,
                         "status_url": status_url(external_id)}, status_code=202)


@router.get("/orders/{external_id}")
async def get_order(request: Request, external_id: str):
    """What `keap-orders status ID --json` shows (never the customer data), and the order's problem if any."""
    _reader(request)
    ledger = _producer(request).ledger
    try:
        state, problem = await run_in_threadpool(lambda: (ledger.get(external_id), ledger.problem(external_id)))
    except UNAVAILABLE:
        return unavailable()
    if state is None and problem is None:
        raise HTTPException(404, f"order {external_id}: not in the ledger")
    return {**(state.as_dict() if state else {"external_id": external_id, "status": None}), "problem": problem}


@router.get("/orders")
async def list_orders(request: Request, status: str = Query(..., description=", ".join(STATUSES)),
                      cursor: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=_LIST_MAX),
                      step: str | None = None, kind: str | None = None):
    """A page of the orders with one status (a cursor over its set; `next_cursor` is null at the end). `step` and
    `kind` (an error kind) filter a page of failed orders, so a page may hold fewer than `limit`."""
    _reader(request)
    if status not in STATUSES:
        raise HTTPException(422, f"status {status!r}: use one of {', '.join(STATUSES)}")
    ledger = _producer(request).ledger

    def page() -> tuple[int, list[dict]]:
        following, ids = ledger.status_page(status, cursor, limit)
        rows = [state.as_dict() for state in map(ledger.get, ids) if state is not None]
        return following, [r for r in rows if (not step or r["error_step"] == step)
                           and (not kind or r["error_kind"] == kind)]

    try:
        following, rows = await run_in_threadpool(page)
    except UNAVAILABLE:
        return unavailable()
    return {"orders": rows, "next_cursor": following or None}


@router.get("/problems")
async def problems(request: Request, limit: int = Query(100, ge=1, le=_LIST_MAX), before: float | None = None):
    """Conflicting content and invalid store deliveries, newest first (`before`: the `at` of the last one seen)."""
    _reader(request)
    try:
        return {"problems": await run_in_threadpool(_producer(request).ledger.problems, limit, before)}
    except UNAVAILABLE:
        return unavailable()


@router.post("/orders/{external_id}/retry", status_code=202)
async def retry(request: Request, external_id: str):
    """Operators: resume a failed order at its failed step. Body (optional): {"from_step": S, "lane": L,
    "order": {a corrected order}}. A stored-card charge whose answer was lost is checked with the CLI, not here."""
    _operator(request)
    body = await _json(request) if int(request.headers.get("content-length") or 0) else {}
    if not isinstance(body, dict) or set(body) - {"from_step", "lane", "order"}:
        raise HTTPException(422, "the body takes from_step, lane and order")
    sent = await _call(request, _producer(request).retry_order, external_id, **body)
    if isinstance(sent, JSONResponse):
        return sent
    return JSONResponse({"external_id": external_id, "status": sent.status, "status_url": status_url(external_id)},
                        status_code=202)


@router.post("/orders/{external_id}/cancel")
async def cancel(request: Request, external_id: str):
    """Operators: stop an order for good (what is already in Keap stays)."""
    _operator(request)
    try:
        before = await run_in_threadpool(_producer(request).ledger.cancel, external_id)
    except UNAVAILABLE:
        return unavailable()
    if before is None:
        raise HTTPException(404, f"order {external_id}: not in the ledger")
    return {"external_id": external_id, "status": "cancelled", "was": before}
