"""The console's routes: login, overview, orders (search, timeline, retry, cancel), failed (groups, bulk retry
with preview), stuck and parked, jobs (progress, ETA, invalid rows, pause/resume/cancel)."""
from __future__ import annotations

import logging
import secrets
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, PlainTextResponse, RedirectResponse, Response

from admin.jobs import describe, scopes_of
from admin.web.console import views
from admin.web.console.base import COOKIE, HERE, Page, action, console, session, templates
from producers.jobs import eta
from worker.contract import OrderInvalid

log = logging.getLogger(__name__)
router = APIRouter(prefix="/console", include_in_schema=False)
LOGIN_COOKIE = "keap_console_login"  # the login form's CSRF token (double submit: cookie and form must agree)
BULK_LIMIT = 500  # orders one bulk retry sends at most (a bigger group is retried in several confirmations)


@router.get("/static/console.css")
def style():
    return FileResponse(HERE / "static" / "console.css", media_type="text/css",
                        headers={"Cache-Control": "max-age=3600"})


def _go(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict",
                        secure=console(request).settings.console_secure_cookie)


# login ------------------------------------------------------------------------------------------------------
@router.get("/login")
def login_form(request: Request, failed: bool = False):
    token = secrets.token_urlsafe(24)
    response = templates.TemplateResponse(request, "login.html", {"login_csrf": token, "failed": failed,
                                                                   "user": None})
    _cookie(response, request, LOGIN_COOKIE, token, max_age=3600)
    return response


@router.post("/login")
async def login(request: Request):
    form = await request.form()
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not secrets.compare_digest(str(form.get("csrf", "")), expected):
        return PlainTextResponse("refused: the login form's CSRF token is missing or wrong; reload the login page",
                                 status_code=403)
    user = console(request).sessions.login(str(form.get("name", "")), str(form.get("password", "")))
    if user is None:
        log.warning("console: a login was refused")  # no name: it may be a mistyped password
        return _go("/console/login?failed=1")
    log.info("console: %s logged in (%s)", user.name, user.role)
    response = _go("/console/")
    _cookie(response, request, COOKIE, console(request).sessions.cookie(user))
    response.delete_cookie(LOGIN_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request):
    response = _go("/console/login")
    response.delete_cookie(COOKIE)
    return response


# pages ------------------------------------------------------------------------------------------------------
@router.get("/")
def overview(request: Request):
    page = session(request)
    if not isinstance(page, Page):
        return page
    c = page.console
    return page.render("overview.html", tab="overview", **views.overview(c.ledger, c.settings))


@router.get("/orders")
def orders(request: Request):
    page = session(request)
    return page.render("orders.html", tab="orders", search=None, query="") if isinstance(page, Page) else page


@router.post("/orders")
async def find_order(request: Request):
    """A search is a POST so what was typed (maybe an email) stays out of URLs and access logs."""
    page = session(request)
    if not isinstance(page, Page):
        return page
    form = await request.form()
    query = str(form.get("q", ""))
    result = views.search(page.console.ledger, page.console.settings, query)
    if len(result.found) == 1:
        return _go(f"/console/orders/{quote(result.found[0], safe='')}")
    return page.render("orders.html", tab="orders", search=result, query=query)


@router.get("/orders/{external_id:path}")
def order(request: Request, external_id: str):
    page = session(request)
    if not isinstance(page, Page):
        return page
    c = page.console
    state = c.ledger.get(external_id)
    if state is None:
        return page.render("orders.html", tab="orders", query=external_id, status_code=404,
                           search=views.Search(note=f"no order {external_id} in the ledger"))
    confirm = request.query_params.get("confirm")
    return page.render("order.html", tab="orders", order=state, steps=views.timeline(state),
                       keap_ids=views.keap_ids(state, c.settings.keap_app_url), confirm=confirm,
                       quoted=quote(external_id, safe=""), message=request.query_params.get("said"))


@router.post("/orders/{external_id:path}/retry")
async def retry(request: Request, external_id: str):
    page, _ = await action(request)
    if not isinstance(page, Page):
        return page
    try:
        result = page.console.producer.retry_order(external_id)
        said = f"retried: {result.status}"
    except (LookupError, ValueError, OrderInvalid) as exc:
        said = f"not retried: {exc}"
    log.info("console: %s retried order %s", page.user.name, external_id)
    return _go(f"/console/orders/{quote(external_id, safe='')}?said={quote(said)}")


@router.post("/orders/{external_id:path}/cancel")
async def cancel(request: Request, external_id: str):
    page, _ = await action(request)
    if not isinstance(page, Page):
        return page
    old = page.console.ledger.cancel(external_id)
    log.info("console: %s cancelled order %s (was %s)", page.user.name, external_id, old)
    return _go(f"/console/orders/{quote(external_id, safe='')}?said={quote(f'cancelled (was {old})')}")


@router.get("/failed")
def failed(request: Request):
    page = session(request)
    if not isinstance(page, Page):
        return page
    groups, total = views.failed_groups(page.console.ledger)
    return page.render("failed.html", tab="failed", groups=groups, total=total)


@router.get("/failed/{group}/retry")
def retry_preview(request: Request, group: str):
    """What a bulk retry will send: each order, the step it resumes at, its lane; then a confirmation."""
    page = session(request)
    if not isinstance(page, Page):
        return page
    found = next((g for g in views.failed_groups(page.console.ledger)[0] if g.key == group), None)
    if found is None:
        return page.refuse("this group has no failed order any more (retried or cancelled meanwhile)", 404)
    return page.render("retry.html", tab="failed", group=found, rows=found.rows[:BULK_LIMIT], limit=BULK_LIMIT)


@router.post("/failed/retry")
async def retry_many(request: Request):
    page, form = await action(request)
    if not isinstance(page, Page):
        return page
    ids = [ext for ext in str(form.get("ids", "")).split("\n") if ext.strip()][:BULK_LIMIT]
    done, problems = 0, []
    for ext in ids:
        try:
            page.console.producer.retry_order(ext.strip())
            done += 1
        except (LookupError, ValueError, OrderInvalid) as exc:
            problems.append(f"{ext}: {exc}")
    log.info("console: %s retried %d failed order(s) (%d refused)", page.user.name, done, len(problems))
    groups, total = views.failed_groups(page.console.ledger)
    return page.render("failed.html", tab="failed", groups=groups, total=total,
                       message=f"retried {done} of {len(ids)} order(s)", problems=problems)


@router.get("/stuck")
def stuck(request: Request):
    page = session(request)
    if not isinstance(page, Page):
        return page
    return page.render("stuck.html", tab="stuck", **views.not_moving(page.console.ledger))


@router.get("/jobs")
def jobs(request: Request):
    page = session(request)
    if not isinstance(page, Page):
        return page
    c = page.console
    limits, now = scopes_of(c.settings, c.ledger.redis), c.ledger.now()
    rows = [(job, eta(job, limits, now)) for job in c.jobs.recent()]
    return page.render("jobs.html", tab="jobs", jobs=rows)


@router.get("/jobs/{job_id}")
def job(request: Request, job_id: str):
    page = session(request)
    if not isinstance(page, Page):
        return page
    c = page.console
    if c.jobs.get(job_id) is None:
        return page.refuse(f"no job {job_id}", 404)
    c.jobs.settle(job_id)
    found, now = c.jobs.get(job_id), c.ledger.now()
    return page.render("job.html", tab="jobs", job=found, lines=describe(found, now, scopes_of(
        c.settings, c.ledger.redis)), invalid=c.jobs.invalid_rows(job_id)[:views.LIST_LIMIT],
        message=request.query_params.get("said"))


@router.get("/jobs/{job_id}/invalid.csv")
def invalid_csv(request: Request, job_id: str):
    page = session(request)
    if not isinstance(page, Page):
        return page
    return Response(page.console.jobs.invalid_csv(job_id), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="invalid-rows-{job_id}.csv"'})


@router.post("/jobs/{job_id}/{verb}")
async def job_action(request: Request, job_id: str, verb: str):
    page, _ = await action(request)
    if not isinstance(page, Page):
        return page
    status = {"pause": "paused", "resume": "queued", "cancel": "cancelled"}.get(verb)
    if status is None:
        return page.refuse(f"no action {verb}", 404)
    try:
        page.console.jobs.set_status(job_id, status)
        said = f"{verb}: done"
    except (LookupError, ValueError) as exc:
        said = str(exc)
    log.info("console: %s: %s job %s", page.user.name, verb, job_id)
    return _go(f"/console/jobs/{job_id}?said={quote(said)}")
