"""What every console page shares: the session of a request (or a redirect to the login), the CSRF check of an
action, the templates with their filters, and the wiring read from `app.state` (settings, ledger, producer)."""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from admin.console import span
from admin.web.console.users import Sessions, User, parse_users
from producers.enqueue import Producer
from producers.jobs import Jobs
from worker.ledger import Ledger
from worker.settings import Settings

COOKIE = "keap_console"
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")


def _utc(moment: float | None) -> str:
    if not moment:
        return "-"
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


templates.env.filters["utc"] = _utc
templates.env.filters["span"] = lambda seconds: span(max(seconds or 0, 0))


@dataclass
class Console:
    """The console's wiring, built once per app (its sessions know the users and the signing key)."""

    settings: Settings
    producer: Producer
    sessions: Sessions
    jobs: Jobs

    @property
    def ledger(self) -> Ledger:
        return self.producer.ledger


def console(request: Request) -> Console:
    state = request.app.state
    if getattr(state, "console", None) is None:
        settings = state.settings
        state.console = Console(settings, state.producer,
                                Sessions(settings.console_secret, parse_users(settings.console_users)),
                                Jobs(state.producer.ledger))
    return state.console


@dataclass
class Page:
    """A logged-in request: who, the CSRF token its forms carry, the console."""

    request: Request
    user: User
    csrf: str
    console: Console

    def render(self, template: str, status_code: int = 200, **context) -> HTMLResponse:
        return templates.TemplateResponse(self.request, template, {"user": self.user, "csrf": self.csrf,
                                                                   "now": self.console.ledger.now(), **context},
                                          status_code=status_code)

    def refuse(self, why: str, status_code: int = 403) -> HTMLResponse:
        return self.render("refused.html", status_code=status_code, why=why)


def session(request: Request) -> Page | RedirectResponse:
    """The request's login, or a redirect to the login page."""
    c = console(request)
    found = c.sessions.read(request.cookies.get(COOKIE))
    if found is None:
        return RedirectResponse("/console/login", status_code=303)
    return Page(request, found[0], found[1], c)


async def action(request: Request) -> tuple[Page | RedirectResponse | HTMLResponse, dict]:
    """A POST: the login, the form, and a refusal unless the form carries the session's CSRF token and the user
    may act (read-only users see no buttons, and their forged posts are refused here)."""
    page = session(request)
    form = dict(await request.form())
    if not isinstance(page, Page):
        return page, form
    if not hmac.compare_digest(str(form.get("csrf", "")), page.csrf):
        return page.refuse("this form's CSRF token is missing or wrong: nothing was done. Reload the page and try "
                           "again."), form
    if not page.user.can_act:
        return page.refuse("your role is read-only: nothing was done."), form
    return page, form
