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

    # Rate limit shared by all workers (per Keap credential)
    rate_limits: str = Field(
        "",
        description="Keap limits shared by all workers, e.g. '5/s,240/min,30000/day' or a profile (oauth, sak). "
        "Empty: from the credential type (API key: sak, OAuth token: oauth).",
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
        "Shopify Payments=Credit Card (Manual);Credit card (Stripe)=Credit Card (Manual);stripe=Credit Card (Manual);"
        "Cash on Delivery (COD)=Cash;Cash on delivery=Cash;cod=Cash;Check payments=Check;cheque=Check",
        description="Store payment gateway -> Keap Manual Payment Type, ';'-separated 'Gateway=Type' pairs (gateway "
        "names compared without case). A paid order whose gateway is neither here nor a Manual Payment Type is "
        "reported with the gateway's name.",
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

    sentry_dsn: SecretStr | None = Field(None, description="Sentry DSN; errors are reported without customer data.")


@lru_cache
def get_settings() -> Settings:
    return Settings()
