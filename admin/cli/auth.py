"""`keap-orders auth`: authorise the Keap app (OAuth2), show when its tokens expire, refresh them, forget them."""
from __future__ import annotations

import sys

import click

from admin import auth as flow
from admin.cli import base
from admin.cli.base import EXIT_KEAP
from admin.cli.show import emit_json
from admin.console import when
from admin.credentials import StillRefused, resume
from worker.context import NoCredential, oauth_tokens
from worker.keap import KeapError
from worker.keap.tokens import OAuthTokens


def _tokens() -> OAuthTokens:
    settings = base.settings()
    if not settings.keap_client_id:
        raise NoCredential("OAuth is not configured: set KEAP_CLIENT_ID, KEAP_CLIENT_SECRET, KEAP_REDIRECT_URI and "
                           "TOKEN_ENCRYPTION_KEY (see `keap-orders auth login --help`)")
    return oauth_tokens(settings, base.redis_client())


@click.group(epilog="\b\nExamples:\n  keap-orders auth login --listen\n  keap-orders auth status --json")
def auth() -> None:
    """Authorise keap-orders with Keap (OAuth2); its tokens are kept in Redis, encrypted, and refreshed by the
    workers (one refresh for the whole fleet)."""


@auth.command("login", epilog="\b\nExample:\n  keap-orders auth login --listen --timeout 600")
@click.option("--listen", is_flag=True,
              help="Catch Keap's redirect on KEAP_REDIRECT_URI (a loopback address such as http://127.0.0.1:8765/"
                   "callback) instead of asking you to paste it.")
@click.option("--timeout", default=300.0, show_default=True, help="With --listen: seconds to wait for the redirect.")
def auth_login(listen, timeout) -> None:
    """Authorise the Keap app: open the printed address, sign in and allow access, then paste the address Keap
    sends the browser to (or use --listen). Stores the tokens and resumes orders waiting for re-authorisation.

    Needs KEAP_CLIENT_ID, KEAP_CLIENT_SECRET, KEAP_REDIRECT_URI and TOKEN_ENCRYPTION_KEY (a Fernet key that
    encrypts the tokens in Redis; every worker needs the same one). Make a key with:

    python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"
    """
    settings = base.settings()
    tokens = _tokens()
    if not settings.keap_redirect_uri:
        raise click.ClickException("set KEAP_REDIRECT_URI to the redirect URI registered for the Keap app")
    state = flow.new_state()
    try:
        catcher = flow.RedirectCatcher(settings.keap_redirect_uri, state) if listen else None
        click.echo(f"Open this address in a browser, sign in to Keap and allow access:\n\n  "
                   f"{flow.authorize_url(settings, state)}\n")
        if catcher is not None:
            click.echo(f"Waiting for Keap's redirect to {settings.keap_redirect_uri} ...")
            code = catcher.wait(timeout)
        else:
            code, checked = flow.code_from(click.prompt("Paste the address the browser was sent to (or only the code)"),
                                           state)
            if not checked:
                click.echo("note: a bare code cannot be checked against this login's state", err=True)
        pair, released = flow.complete(tokens, base.ledger(), code, settings.keap_redirect_uri)
    except flow.LoginError as exc:
        raise click.ClickException(str(exc)) from None
    except KeapError as exc:
        said = str(exc)
        raise click.ClickException(said if "auth login" in said else f"{said}; run `keap-orders auth login` again") \
            from None
    except TimeoutError:
        raise click.ClickException("a token refresh is under way and did not finish; try again") from None
    click.echo(f"authorised: tokens stored (encrypted); the access token expires "
               f"{when(pair.expires_at, pair.refreshed_at)}")
    click.echo(f"resumed {released} order(s) that were waiting for re-authorisation")


@auth.command("status", epilog="\b\nExample:\n  keap-orders auth status --json")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable (times as epoch seconds).")
def auth_status(as_json) -> None:
    """When the tokens expire, the last refresh, whether the fleet is paused (never the tokens).

    Exit status: 0 tokens stored and not paused; 6 no tokens, or Keap refused the grant (run auth login)."""
    shown = _tokens().status()
    waiting = base.ledger().held_count("reauth")
    if as_json:
        emit_json({**shown, "orders_waiting_for_reauthorisation": waiting})
    else:
        for line in flow.status_lines(shown, waiting):
            click.echo(line)
    if not shown["stored"] or shown["paused"]:
        sys.exit(EXIT_KEAP)


@auth.command("refresh", epilog="\b\nExample:\n  keap-orders auth refresh")
def auth_refresh() -> None:
    """Refresh the tokens now (the workers do it by themselves ahead of expiry)."""
    try:
        pair = _tokens().refresh()
    except KeapError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"refreshed: the access token expires {when(pair.expires_at, pair.refreshed_at)}")


@auth.command("logout", epilog="\b\nExample:\n  keap-orders auth logout")
def auth_logout() -> None:
    """Delete the stored tokens: workers stop calling Keap and orders wait until `keap-orders auth login`."""
    deleted = _tokens().forget()
    click.echo("deleted the stored tokens" if deleted else "no tokens were stored")


@auth.command("resume", epilog="\b\nExample:\n  keap-orders auth resume     (after setting the right KEAP_API_KEY)")
def auth_resume() -> None:
    """After fixing a credential Keap refused (KEAP_API_KEY, KEAP_ACCESS_TOKEN, an app's permissions): check it with
    one read call, then let the workers use it again and release the orders waiting for it."""
    try:
        released = resume(base.keap_context())
    except StillRefused as exc:
        raise click.ClickException(f"the credential still does not work: {exc}") from None
    click.echo(f"the credential works; resumed {released} order(s) that were waiting for it")


COMMANDS = (auth,)
