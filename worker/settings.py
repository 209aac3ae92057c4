"""Every knob of keap-orders, read from the environment or `.env` (see deploy/.env.example)."""
from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # Keap
    keap_base_url: str = Field(
        "https://api.infusionsoft.com/crm",
        description="Keap API root; paths /rest/v2/... are appended. The sandbox is http://127.0.0.1:PORT/crm.",
    )
    keap_api_key: SecretStr | None = Field(None, description="Service account key or personal access token.")
    keap_access_token: SecretStr | None = Field(
        None, description="A static OAuth access token (instead of an API key or KEAP_CLIENT_ID). Never refreshed: "
        "Keap's access tokens expire after 24 hours, so use `keap-orders auth login` for anything longer.",
    )
    keap_client_id: str = Field(
        "", description="OAuth client id of the Keap app; with it the workers use the tokens `keap-orders auth "
        "login` stored (encrypted) in Redis and refresh them. The shared rate limit follows this app.",
    )
    keap_client_secret: SecretStr | None = Field(None, description="OAuth client secret of the Keap app.")
    keap_redirect_uri: str = Field(
        "", description="Redirect URI registered for the app. `auth login --listen` catches the code on it when it "
        "is a loopback address (http://127.0.0.1:PORT/...); otherwise paste the address the browser lands on.",
    )
    keap_authorize_url: str = Field(
        "https://accounts.infusionsoft.com/app/oauth/authorize", description="Keap's OAuth authorize page."
    )
    keap_token_url: str = Field("https://api.infusionsoft.com/token", description="Keap's OAuth token endpoint.")
    token_encryption_key: SecretStr | None = Field(
        None, description="Fernet key that encrypts the OAuth tokens in Redis; several comma-separated keys: the "
        "first encrypts, all decrypt (key rotation). Make one with "
        "`python -c \"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())\"`.",
    )
    oauth_refresh_ahead: float = Field(
        0.1, description="Refresh the access token when less than this share of its life is left ...",
    )
    oauth_refresh_ahead_max_seconds: float = Field(
        7200, description="... or, for long-lived tokens, at most this many seconds before it expires.",
    )
    oauth_refresh_every_days: float = Field(
        30, description="Refresh at least this often even when idle: Keap's refresh tokens die after 45 days.",
    )
    oauth_refresh_wait_seconds: float = Field(
        45, description="How long a request waits for another process's token refresh before it is retried later "
        "(above the token call's timeout, so a slow refresh is waited for).",
    )
    keap_account: str = Field(
        "",
        description="The Keap account (app name, e.g. ab103) the credential belongs to: the shared rate limit is "
        "kept per account, so every worker and credential of one account share it. Empty: derived from the "
        "credential.",
    )
    keap_timeout_seconds: float = Field(30.0, description="Read timeout of one Keap call.")
    external_id_field_label: str = Field(
        "External Order ID", description="Label of the order custom field that holds the external order id."
    )
    create_missing_custom_fields: bool = Field(
        True, description="Create order custom fields (TEXT) for labels Keap does not have yet."
    )

    # Redis / Celery
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Celery broker, ledger and shared rate limit.")
    key_prefix: str = Field("keap-orders", description="Prefix of every Redis key the ledger and caches write.")
    live_queue: str = Field("keap.live", description="Queue of the live lane (served first).")
    backfill_queue: str = Field("keap.backfill", description="Queue of the backfill lane.")
    require_persistent_redis: bool = Field(
        True, description="Workers refuse to start on a Redis that keeps nothing on disk (the ledger is the record "
        "of what was written to Keap). false only for a throwaway development Redis (the demo sets it).",
    )
    keeper_queue: str = Field("keap.keeper", description="Queue of the keeper's periodic task (Celery beat).")
    visibility_timeout_seconds: int = Field(
        300,
        description="Redis broker visibility timeout: how soon a dead worker's unfinished message is delivered "
        "again. Keep it above the longest step (a few Keap calls of KEAP_TIMEOUT_SECONDS each); long waits are "
        "parked outside the broker, so it need not cover them.",
    )
    max_retries: int = Field(8, description="Retries of one step for transient errors before it fails.")
    retry_backoff_cap_seconds: int = Field(600, description="Upper bound of one retry backoff.")
    broker_retry_max_seconds: float = Field(
        30, description="Waits up to this go through the broker as a countdown; longer ones are parked in Redis "
        "and released by the keeper (a countdown near the visibility timeout would be delivered twice).",
    )

    # Exactly once and liveness
    lease_seconds: float = Field(
        15, description="Lease of a running step on its order (and of shared locks), renewed every third of it "
        "while the worker lives: a dead worker's order is free again within this time.",
    )
    settle_seconds: float = Field(
        120, description="After a write whose answer was lost, how long Keap may still apply it: nothing is "
        "written again for that order before. Above Keap's gateway (Apigee) I/O timeout of 55 s.",
    )
    settle_checks: int = Field(
        3, description="Lookups (a quarter of the settle time apart, then doubling) that must all miss a lost "
        "write, after the settle time, before it is written again. Stored-card charges are never repeated on "
        "their own: an operator decides.",
    )
    queued_stall_seconds: float = Field(
        300, description="A queued order whose step has not started within this is sent again by the keeper.",
    )
    max_redrives: int = Field(
        5, description="Times the keeper sends a stalled order again (without progress in between) before it "
        "marks the order failed.",
    )
    ledger_durability: str = Field(
        "disk", pattern="^(disk|detect)$",
        description="disk: workers refuse a Redis that cannot put each intent on its disk before the Keap write "
        "(appendfsync always, or Redis >= 7.2 with appendonly yes: WAITAOF). detect: accept a Redis that may lose "
        "its last second on a host crash; the loss is found by the restart it takes and the orders around it look "
        "in Keap first (docs/exactly-once.md). Not checked with REQUIRE_PERSISTENT_REDIS=false.",
    )
    ledger_replicas: int = Field(
        0, ge=0, description="Replicas each intent must reach (WAIT, or WAITAOF on Redis >= 7.2) before its Keap "
        "write, for a Redis that fails over to a replica. Workers refuse to start with fewer connected.",
    )
    redis_loss_grace_seconds: float = Field(
        3600, description="After Redis is found to have lost acknowledged writes, orders registered up to this long "
        "after the loss also look in Keap before each write (an order lost with them and sent again).",
    )
    audit_after_seconds: float = Field(
        900, description="An order that had a lost answer (or was active when Redis lost writes) is audited this long "
        "after it finished: a second Keap order for its external id is deleted when unpaid, reported when paid.",
    )
    keeper_interval_seconds: float = Field(5, description="How often the keeper looks for due work.")
    quota_reset_spread_seconds: float = Field(
        300, description="Orders waiting for the daily quota are released over this many seconds after Keap's "
        "reset, not all in its first second.",
    )

    # Rate limit shared by all workers (per Keap credential and per Keap account)
    rate_limits: str = Field(
        "",
        description="The credential's Keap limits, shared by all workers, e.g. '5/s,240/min,30000/day' or a "
        "profile (oauth, sak, off). Empty: from the credential type (API key: sak, OAuth token: oauth).",
    )
    account_rate_limits: str = Field(
        "10000/min,250000/day",
        description="The Keap account's limits, shared by every credential of the account (KEAP_ACCOUNT); "
        "'off' to leave them to Keap.",
    )
    backfill_quota_share: float = Field(
        0.8, ge=0, le=1,
        description="Share of each daily quota the backfill lane may use; the rest is kept for live orders.",
    )
    throttle_max_block_seconds: float = Field(
        5.0, description="A call waits this long at most for its slot; longer waits return the step to the "
        "queue (or park it until the daily reset).",
    )
    throttle_send_margin_ms: float = Field(
        20.0, ge=0, description="How late a call may reach Keap after its slot: calls are spaced so N of them span "
        "the window plus this margin. A quarter covers this process's delay before the send (later calls move "
        "the schedule), the rest the way to Keap.",
    )

    manual_payment_types: str = Field(
        "Credit Card (Manual),Check,Cash,Money Order,Adjustment",
        description="Manual Payment Types of the Keap account (comma-separated). Keap's API cannot list them, "
        "so `backfill --dry-run` checks payment methods against this list; Keap itself checks at import.",
    )

    # Backfill
    backfill_window: int = Field(200, description="At most this many backfill orders in flight at once.")

    # Reading store exports (producers/sources)
    shopify_id_prefix: str = Field("shopify:", description="External id of a Shopify order: this + its number "
                                   "(#1001 -> shopify:1001). `backfill --id-prefix` overrides it for one file.")
    woocommerce_id_prefix: str = Field("woo:", description="External id of a WooCommerce order: this + its number.")
    payment_method_map: str = Field(
        "", description="Store payment gateway -> Keap Manual Payment Type, ';'-separated 'Gateway=Type' pairs (gateway "
        "names compared without case), added to the built-in map (Shopify Payments, Stripe, cash on delivery, "
        "cheques: producers/sources/base.py DEFAULT_PAYMENT_METHODS); 'Gateway=' with no type drops a built-in one. "
        "A paid order whose gateway is neither mapped nor a Manual Payment Type is reported with the gateway's name.",
    )
    missing_email_placeholder: str = Field(
        "", description="Email for orders that have none (Shopify COD/phone orders), e.g. "
        "'order-{external_id}@no-email.invalid' ({external_id} made email-safe). Empty: such orders are reported "
        "as invalid rows and not imported.",
    )
    store_timezone: str = Field(
        "", description="IANA time zone of the store (e.g. America/New_York) for exports whose times have no UTC "
        "offset (WooCommerce plugin CSVs). Empty: such times are row errors.",
    )

    # The HTTP service (`keap-orders serve`): the ingestion API and the stores' webhooks
    ingest_tokens: SecretStr | None = Field(
        None, description="Bearer tokens of the ingestion API (POST/GET /v1/orders), comma-separated so they rotate "
        "(add the new one, move the callers, drop the old). Empty: the API refuses every call (401).",
    )
    operator_tokens: SecretStr | None = Field(
        None, description="Bearer tokens for the operators' actions over HTTP (/v1/orders/ID/retry and /cancel), "
        "comma-separated; they also read. Never the same as INGEST_TOKENS.",
    )
    shopify_webhook_secret: SecretStr | None = Field(
        None, description="The key Shopify signs webhooks with (the app's client secret, or the key shown in Settings "
        "-> Notifications); comma-separated: each is tried (a rotation). Empty: /webhooks/shopify answers 401.",
    )
    woocommerce_webhook_secret: SecretStr | None = Field(
        None, description="The webhook's Secret in WooCommerce -> Settings -> Advanced -> Webhooks; comma-separated: "
        "each is tried. Empty: /webhooks/woocommerce answers 401 (its ping is still answered).",
    )
    webhook_spool_dir: str = Field(
        "spool/woocommerce", description="Where a WooCommerce delivery is kept on disk while Redis does not answer "
        "(WooCommerce never retries); the service imports and removes it once Redis answers. A persistent volume.",
    )
    webhook_test_orders: bool = Field(
        False, description="Import Shopify test orders (`test: true`, the bogus gateway); by default they are "
        "answered 200 and skipped.",
    )
    http_max_body_bytes: int = Field(
        5_000_000, ge=1000, description="Largest request body the HTTP service reads (order webhooks can pass 100 kB)"
        "; a bigger one is answered 413.",
    )
    http_max_json_depth: int = Field(32, ge=4, description="Deepest JSON nesting accepted; deeper bodies get 400.")
    http_ingest_threads: int = Field(
        2, ge=1, description="Orders and deliveries one server process registers at once (the rest wait their turn, "
        "in order). More threads only contend for the GIL and the Redis connection pool's lock (figures: "
        "docs/benchmarks.md, bench/http_ingest.py). Run more processes (`serve --workers`) to use more cores.",
    )

    sentry_dsn: SecretStr | None = Field(None, description="Sentry DSN; errors are reported without customer data.")

    # Operations: Sentry, logs, metrics, health, time limits, retention
    sentry_environment: str = Field("", description="Sentry environment name (e.g. production, staging).")
    sentry_traces_sample_rate: float = Field(
        0.0, ge=0, le=1,
        description="Share of tasks sent to Sentry as performance transactions (scrubbed like events).",
    )
    sentry_refusal_interval_seconds: float = Field(
        3600, description="Business refusals (unknown SKU, payment type, total mismatch, ...) reach Sentry as one "
        "warning per reason per this many seconds for the whole fleet, with the count of refusals it stands for.",
    )
    log_format: str = Field(
        "auto", pattern="^(auto|json|text)$",
        description="Worker log lines: json (one JSON object per line), text, or auto (JSON when stderr is not a "
        "terminal).",
    )
    prometheus_multiproc_dir: str = Field(
        "", description="Directory where every worker process of a host writes its metrics (prometheus-client's "
        "multiprocess mode) and `keap-orders metrics` reads them; empty: no metrics. Wipe it when the host starts.",
    )
    heartbeat_file: str = Field(
        "", description="A file the worker touches on every Celery heartbeat (every 2 s): a health check tests "
        "that it is fresh. Empty: none.",
    )
    task_soft_time_limit_seconds: float = Field(
        240, description="A step still running after this is interrupted and retried later (its unanswered writes are "
        "reconciled first). Above the longest step: a few Keap calls of KEAP_TIMEOUT_SECONDS each.",
    )
    task_time_limit_seconds: float = Field(
        270, description="A step still running after this has its worker process killed (the keeper re-sends the "
        "order). Above the soft limit and below VISIBILITY_TIMEOUT_SECONDS.",
    )
    done_retention_days: float = Field(
        30, ge=0, description="Done orders are compacted to a small marker (status, Keap ids: what exactly-once "
        "needs; the order's data is dropped) this many days after they finished, by the keeper and `keap-orders "
        "gc`. Ended backfill jobs (finished, cancelled, failed) are deleted this many days after they ended, by the "
        "feeders. 0: never.",
    )

    # The operators' console (admin/web/console/) and the feeder of backfill jobs (producers/feeder.py)
    console_users: str = Field(
        "", description="Who may log in to the console: `name:hash:role` entries separated by commas, role admin "
        "or read-only; `keap-orders console-user NAME` prints an entry. Empty: the console refuses every login.",
    )
    console_secret: str = Field(
        "", description="Key that signs the console's session cookies (32+ random characters, the same on every "
        "web process). Empty: a random key per process (sessions end when it restarts).",
    )
    console_secure_cookie: bool = Field(
        True, description="Session cookie only over HTTPS (and http://localhost). false only behind no TLS at all.",
    )
    keap_app_url: str = Field(
        "", description="The Keap app of the account (e.g. https://ab123.infusionsoft.com): the console links Keap "
        "ids into it. Empty: ids without links.",
    )
    feeder_lease_seconds: float = Field(
        15, gt=0, description="A feeder holds its backfill job this long between renewals: a dead feeder's job is "
        "resumed by another after at most this.",
    )


    @property
    def payment_types(self) -> set[str]:
        return {name.strip() for name in self.manual_payment_types.split(",") if name.strip()}


@lru_cache
def get_settings() -> Settings:
    return Settings()
