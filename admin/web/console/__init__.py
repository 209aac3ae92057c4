"""The operators' console: server-rendered pages (Jinja2, no build step) on the HTTP service, behind a login with
a read-only role; every action is a POST with the session's CSRF token. create_app includes `pages.router`."""
