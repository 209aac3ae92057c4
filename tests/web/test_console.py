"""The console as an operator uses it, in a real headless Chromium (Debian's chromium + chromium-driver, through
Selenium) against `keap-orders serve`, a real worker and the sandbox: one server and one browser for the module.
CONSOLE_SHOTS=/some/dir saves a screenshot of each page visited."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.conftest import REDIS_URL
from tests.e2e.conftest import order

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.expected_conditions import staleness_of  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, DRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver")
SHOTS = os.environ.get("CONSOLE_SHOTS")
ADMIN, VIEWER, PASSWORD = "alice", "bob", "correct horse battery"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Site:
    """The running console and the fleet behind it, for one module."""

    def __init__(self, sandbox, redis_client):
        from admin.demo import run_env, worker_answers, worker_process
        from admin.web.console.users import hash_password
        from producers.enqueue import Producer
        from worker.app import configure
        from worker.settings import Settings

        self.sandbox, self.redis, self.run_id = sandbox, redis_client, f"ui-{uuid.uuid4().hex[:8]}"
        hashed = hash_password(PASSWORD, iterations=1000)  # fast logins; production uses 260,000 iterations
        self.env = run_env(sandbox.base_url, REDIS_URL, self.run_id, RATE_LIMITS="off", LEASE_SECONDS="3",
                           CONSOLE_USERS=f"{ADMIN}:{hashed}:admin,{VIEWER}:{hashed}:read-only",
                           CONSOLE_SECRET="test-secret-" + self.run_id, KEAP_APP_URL="https://ab123.infusionsoft.com")
        self.settings = Settings(**{k.lower(): v for k, v in self.env.items()})
        configure(self.settings)
        self.producer = Producer(self.settings)
        self.ledger = self.producer.ledger
        self._worker = worker_process(self.env, beat=False, concurrency=2)
        assert worker_answers(self._worker.__enter__()), "the worker did not start"
        port = _port()
        self.url = f"http://localhost:{port}"  # localhost: a secure context, so the Secure cookie is kept
        self.server = subprocess.Popen([sys.executable, "-m", "admin.cli", "serve", "--port", str(port)], cwd=ROOT,
                                       env={**os.environ, **self.env}, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(self.url + "/healthz", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and self.server.poll() is None, "keap-orders serve did not start"
                time.sleep(0.1)
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
            options.add_argument(arg)
        self.browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))
        self.browser.implicitly_wait(0)

    def close(self):
        self.browser.quit()
        self.server.terminate()
        self.server.wait(10)
        self._worker.__exit__(None, None, None)
        for key in self.redis.scan_iter(f"*{self.run_id}*", count=1000):
            self.redis.delete(key)

    def open(self, path: str, shot: str | None = None):
        self.browser.get(self.url + path)
        self.shoot(shot)

    def shoot(self, name: str | None):
        if SHOTS and name:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            self.browser.save_screenshot(str(Path(SHOTS) / f"{name}.png"))

    def text(self, css: str) -> str:
        return self.browser.find_element(By.CSS_SELECTOR, css).text

    def has(self, css: str) -> bool:
        return bool(self.browser.find_elements(By.CSS_SELECTOR, css))

    def click(self, css: str):
        """Click and wait for the next page (a click does not wait for the navigation it starts)."""
        page = self.browser.find_element(By.TAG_NAME, "html")
        self.browser.find_element(By.CSS_SELECTOR, css).click()
        # Mid-navigation chromedriver may answer "Node with given id does not belong to the document" instead of a
        # stale element: asked again, it says stale once the old page is gone.
        WebDriverWait(self.browser, 10, ignored_exceptions=(WebDriverException,)).until(staleness_of(page))

    def log_in(self, name: str):
        self.browser.delete_all_cookies()
        self.open("/console/login")
        self.browser.find_element(By.ID, "name").send_keys(name)
        self.browser.find_element(By.ID, "password").send_keys(PASSWORD)
        self.click("#login")
        assert self.browser.current_url.endswith("/console/")

    def wait(self, ext: str, status: str, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while self.ledger.statuses([ext])[ext] != status:
            assert time.monotonic() < deadline, f"{ext}: {self.ledger.statuses([ext])[ext]}, not {status}"
            time.sleep(0.1)


def shop(number: int, sku: str | None = None) -> dict:
    """A Shopify order as the store numbered it; with `sku`, one item Keap may not know."""
    items = {"items": [{"sku": sku, "quantity": 1, "unit_price": "44.80"}]} if sku else {}
    return order(f"shopify:{number}", customer={"email": f"c{number}@example.com", "given_name": "Test"}, **items)


@pytest.fixture(scope="module")
def site(redis_client):
    if not (Path(CHROMIUM).exists() and DRIVER):
        pytest.fail("the console's browser tests need Debian's chromium and chromium-driver "
                    "(apt-get install -y chromium chromium-driver; .ci/run installs them)")
    from sandbox.server import Sandbox

    with Sandbox(port=0, limits="off") as sandbox:
        made = Site(sandbox, redis_client)
        try:
            # Four Shopify orders that fail the same way (a SKU Keap does not have yet), and one that goes in.
            for number in (1001, 1002, 1003, 1004):
                made.producer.enqueue_order(shop(number, "MUG-NEW"))
            made.producer.enqueue_order(shop(1000))
            for number in (1001, 1002, 1003, 1004):
                made.wait(f"shopify:{number}", "failed")
            made.wait("shopify:1000", "done")
            yield made
        finally:
            made.close()


def test_log_in_find_a_failed_order_by_its_number_and_see_why(site):
    site.open("/console/", "0-redirected-to-login")
    assert site.browser.current_url.endswith("/console/login")
    site.log_in(ADMIN)
    assert site.text("#count-failed") == "4"
    site.shoot("1-overview")
    site.open("/console/orders")
    site.browser.find_element(By.ID, "q").send_keys("#1001")
    site.click("#search")
    assert site.text("#order-id") == "shopify:1001" and site.text("#order-status") == "failed"
    why = site.text("#why")
    assert "create_order" in why and "MUG-NEW" in why
    site.shoot("2-order-failed")
    # the one that went in links its Keap ids into the Keap app
    site.open("/console/orders/shopify:1000", "3-order-done")
    link = site.browser.find_element(By.CSS_SELECTOR, "#keap-ids a")
    assert link.get_attribute("href").startswith("https://ab123.infusionsoft.com/")


def test_retry_it_and_see_it_done(site):
    site.log_in(ADMIN)
    with site.sandbox.store.lock:  # the operator adds the product in Keap, then retries
        store = site.sandbox.store
        store._add_product(store._seed_product({"id": "900", "sku": "MUG-NEW", "name": "Mug", "price": "44.80"}))
    site.open("/console/orders/shopify:1001")
    site.click("#retry")
    site.wait("shopify:1001", "done")
    site.open("/console/orders/shopify:1001", "4-order-retried-done")
    assert site.text("#order-status") == "done"


def test_bulk_retry_shows_what_it_will_send_before_it_sends(site):
    site.log_in(ADMIN)
    site.open("/console/failed", "5-failed-groups")
    site.click("#preview-1")
    preview = site.text("#preview")
    assert all(f"shopify:{n}" in preview for n in (1002, 1003, 1004))
    site.shoot("6-bulk-retry-preview")
    assert site.ledger.statuses(["shopify:1002"])["shopify:1002"] == "failed"  # the preview sent nothing
    site.click("#retry-confirm")
    assert "retried 3 of 3" in site.text("#message")
    site.wait("shopify:1002", "done")


def test_cancel_asks_first(site):
    site.producer.enqueue_order(shop(1005, "NOT-THERE"))
    site.wait("shopify:1005", "failed")
    site.log_in(ADMIN)
    site.open("/console/orders/shopify:1005")
    site.click("#cancel")
    assert site.has("#confirm-cancel")
    site.shoot("7-cancel-confirmation")
    assert site.ledger.statuses(["shopify:1005"])["shopify:1005"] == "failed"  # asking changed nothing
    site.click("#cancel-confirm")
    assert site.text("#order-status") == "cancelled"


def test_an_action_without_its_csrf_token_is_refused(site):
    site.producer.enqueue_order(shop(1006, "NOT-THERE"))
    site.wait("shopify:1006", "failed")
    site.log_in(ADMIN)
    site.open("/console/orders/shopify:1006")
    # The page's own cancel form, its token taken out: what a forged cross-site post would be.
    site.browser.execute_script("""
        const form = document.createElement("form");
        form.method = "post"; form.action = "/console/orders/shopify%3A1006/cancel";
        document.body.appendChild(form); form.submit();""")
    WebDriverWait(site.browser, 10).until(lambda b: site.has("#refused"))
    assert "CSRF" in site.text("#refused")
    site.shoot("8-csrf-refused")
    assert site.ledger.statuses(["shopify:1006"])["shopify:1006"] == "failed"


def test_the_read_only_role_sees_no_buttons(site):
    site.log_in(VIEWER)
    site.open("/console/orders/shopify:1006", "9-read-only-order")
    assert site.text("#order-status") == "failed"
    assert not site.has("button#retry") and not site.has("#cancel")
    site.open("/console/failed")
    assert not site.has("[id^=preview-]")
    # and its posts, even with a valid token, are refused
    token = site.browser.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value")
    cookies = {c["name"]: c["value"] for c in site.browser.get_cookies()}
    answer = requests.post(site.url + "/console/orders/shopify%3A1006/cancel", data={"csrf": token},
                           cookies=cookies, allow_redirects=False, timeout=10)
    assert answer.status_code == 403 and site.ledger.statuses(["shopify:1006"])["shopify:1006"] == "failed"


def _search(site, typed: str, shot: str | None = None):
    site.open("/console/orders")
    site.browser.find_element(By.ID, "q").send_keys(typed)
    site.click("#search")
    site.shoot(shot)


def test_find_orders_by_email_and_by_keap_id_and_see_them_by_lane(site):
    site.log_in(ADMIN)
    # One customer's email finds their one order (any case); the page is the order's.
    _search(site, " C1000@Example.com")
    assert site.text("#order-id") == "shopify:1000"
    # A second order of the same customer: both are listed, with how they were found.
    site.producer.enqueue_order({**shop(1007), "customer": {"email": "c1000@example.com", "given_name": "Test"}})
    _search(site, "c1000@example.com", "13-search-by-email")
    rows = site.text("#matches")
    assert "shopify:1000" in rows and "shopify:1007" in rows and rows.count("customer email") == 2
    assert "c1000@example.com" not in site.browser.current_url  # a POST: the email stays out of URLs
    _search(site, "nobody@example.com")
    assert "no order in the ledger for that email" in site.text("#search-note")
    # The Keap order id it wrote finds it too (a number that is no store number).
    keap_order = site.ledger.get("shopify:1000").results["order_id"]
    _search(site, keap_order)
    if site.has("#matches"):  # the sandbox's contact ids are small numbers too: the order may be one of a list
        row = next(r for r in site.browser.find_elements(By.CSS_SELECTOR, "#matches tr") if "shopify:1000" in r.text)
        assert "Keap order id" in row.text
    else:
        assert site.text("#order-id") == "shopify:1000"
    # The overview counts orders by lane and status: the same totals as the status counts.
    site.open("/console/", "14-overview-by-lane")
    cells = site.browser.find_elements(By.CSS_SELECTOR, "#by-lane td[data-status]")
    per_status: dict[str, int] = {}
    for cell in cells:
        per_status[cell.get_attribute("data-status")] = per_status.get(cell.get_attribute("data-status"), 0) + \
            int(cell.text.replace(",", ""))
    assert per_status == {status: int(site.text(f"#count-{status}").replace(",", "")) for status in per_status}
    assert int(site.text("#lane-live [data-status=done]")) >= 1


def test_stuck_and_jobs_pages_with_the_invalid_rows(site, tmp_path):
    from producers.feeder import Feeder
    from producers.jobs import Jobs

    path = tmp_path / "orders.jsonl"
    path.write_text(json.dumps(shop(2001)) + "\n" + json.dumps({**shop(2002), "items": []}) + "\n")
    jobs = Jobs(site.ledger)
    job = jobs.create(str(path), None, {}, 10)
    runner = Feeder(site.producer, jobs, lease_seconds=5, poll_seconds=0.1)
    thread = threading.Thread(target=runner.serve, kwargs={"once": True})
    thread.start()
    thread.join(60)
    assert jobs.get(job.id).status == "finished"
    site.log_in(ADMIN)
    site.open("/console/stuck", "10-stuck-parked")
    site.open("/console/jobs", "11-jobs")
    assert job.id in site.text("#jobs")
    site.open(f"/console/jobs/{job.id}", "12-job")
    assert "invalid 1" in site.text("#job-lines")
    href = site.browser.find_element(By.ID, "invalid-csv").get_attribute("href")
    cookies = {c["name"]: c["value"] for c in site.browser.get_cookies()}
    csv_text = requests.get(href, cookies=cookies, timeout=10).text
    assert csv_text.splitlines()[0] == "line,external_id,field,problem,fix" and csv_text.splitlines()[1].startswith("2,")
