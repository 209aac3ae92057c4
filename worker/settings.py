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
    keap_access_token: SecretStr | None = Field(None, description="OAuth access token (instead of an API key).")
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
    visibility_timeout_seconds: int = Field(
        3600, description="Redis broker visibility timeout; retry countdowns stay below it."
    )
    max_retries: int = Field(8, description="Retries of one step for transient errors before it fails.")
    retry_backoff_cap_seconds: int = Field(600, description="Upper bound of one retry countdown.")

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
        "the window plus this margin. Half covers this process's delay before the socket write (later calls move "
        "the schedule), half the way to Keap.",
    )

    manual_payment_types: str = Field(
        "Credit Card (Manual),Check,Cash,Money Order,Adjustment",
        description="Manual Payment Types of the Keap account (comma-separated). Keap's API cannot list them, "
        "so `backfill --dry-run` checks payment methods against this list; Keap itself checks at import.",
    )

    # Backfill
    backfill_window: int = Field(200, description="At most this many backfill orders in flight at once.")

    sentry_dsn: SecretStr | None = Field(None, description="Sentry DSN; errors are reported without customer data.")


    @property
    def payment_types(self) -> set[str]:
        return {name.strip() for name in self.manual_payment_types.split(",") if name.strip()}


@lru_cache
def get_settings() -> Settings:
    return Settings()
