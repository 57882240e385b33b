"""One typed settings object, read from ``BOLTGATE_*`` environment variables (and ``.env``).

It is built once at start-up and passed down; nothing reads the environment later. Outside dev
mode, :meth:`Settings.check_production` refuses dev secrets and the dev Lightning node.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from boltgate.kit.crypto import split_keys
from boltgate.lightning import connection

DEV_SECRET_KEY = "boltgate-dev-secret-key-do-not-use-in-production"

Mode = Literal["dev", "production"]
Network = Literal["mainnet", "testnet", "signet", "regtest"]


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class ConfigError(ValueError):
    """Settings that must not be used to start the gateway."""


class Settings(BaseSettings):
    """Every option boltgate reads. ``.env.example`` documents each one (a test keeps them in sync)."""

    model_config = SettingsConfigDict(
        env_prefix="BOLTGATE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    mode: Mode = Field("dev", description="dev (embedded defaults, dev node) or production (strict)")
    host: str = Field("127.0.0.1", description="address `boltgate serve` binds to")
    port: int = Field(8402, ge=1, le=65535, description="port `boltgate serve` listens on")
    public_url: str | None = Field(
        None, description="external base URL used in links (hostedCheckoutUrl); default http://host:port"
    )
    data_dir: Path = Field(Path(".boltgate"), description="directory for the SQLite file and dev node state")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL: sqlite+aiosqlite:///path.db or postgresql+asyncpg://user@host/db; "
        "default: SQLite in data_dir",
    )
    auto_migrate: bool = Field(True, description="apply database migrations when the gateway starts")
    database_pool_size: int = Field(
        25,
        ge=1,
        le=200,
        description="PostgreSQL connections kept open per engine and process (about the "
        "requests in flight per worker; fewer makes connections churn under load)",
    )
    secret_key: SecretStr = Field(
        SecretStr(DEV_SECRET_KEY), description="server secret for HMACs (>= 32 chars outside dev mode)"
    )
    secret_key_previous: SecretStr | None = Field(
        None,
        description="while rotating the server key: the keys it replaced, comma-separated, newest first "
        "(each >= 32 chars outside dev mode); they open and verify, the current key seals and signs; "
        "remove after `boltgate secret-key reseal`",
    )
    admin_api_key: SecretStr | None = Field(
        None,
        description="operator key for POST /api/admin/merchants (X-Admin-Key, >= 32 chars outside dev mode); "
        "unset disables it",
    )
    lightning_url: SecretStr = Field(
        SecretStr("dev://"),
        description="the Lightning node or wallet, as a connection URL: dev://, lnd-rest://, clnrest://, "
        "cln-rpc://, phoenixd://, lnbits://, nostr+walletconnect://, opennode://, strike:// "
        "(docs/backends/); secrets in it are never shown",
    )
    lightning_failover_url: SecretStr | None = Field(
        None,
        description="optional second backend: takes new invoices while the first is down "
        "(settlements are watched on both)",
    )
    network: Network = Field("regtest", description="Bitcoin network of the invoices (regtest => lnbcrt)")
    dev_endpoints: bool = Field(True, description="expose /api/dev/* helpers (dev mode only)")
    invoice_expiry_seconds: int = Field(900, ge=60, le=7 * 86400, description="lifetime of a payment")
    min_final_cltv_expiry: int = Field(18, ge=9, le=2016, description="min_final_cltv_expiry of invoices")
    max_payment_sats: int = Field(
        10_000_000, ge=1, description="largest payment accepted, in sats (backend limit)"
    )
    rate_providers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma list of fixed, coinbase, kraken, coingecko; default fixed in dev, "
        "coinbase,kraken,coingecko in production",
    )
    fixed_rates: Annotated[dict[str, Decimal], NoDecode] = Field(
        default_factory=lambda: {
            "USD": Decimal("100000"),
            "EUR": Decimal("92000"),
            "GBP": Decimal("79000"),
        },
        description="rates of the fixed provider, fiat per BTC: USD:100000,EUR:92000",
    )
    rate_ttl_seconds: float = Field(60, gt=0, description="how long a fetched rate is fresh")
    rate_stale_max_seconds: float = Field(
        900, gt=0, description="serve a stale rate this long when every provider fails"
    )
    rate_timeout_seconds: float = Field(5, gt=0, description="timeout of one rate fetch")
    reconcile_interval_seconds: float = Field(
        30, gt=0, description="how often open payments are checked against the backend"
    )
    expiry_sweep_interval_seconds: float = Field(5, gt=0, description="how often expired payments are marked")
    settlement_poll_interval_seconds: float = Field(
        0.25, gt=0, description="dev node: how often the settlement stream polls for settlements"
    )
    lightning_failover_probe_seconds: float = Field(
        10.0, gt=0, le=3600, description="while on the failover backend: how often the first is tried again"
    )
    settlement_poll_seconds: float = Field(
        2.0,
        gt=0,
        le=300,
        description="backends without push (custodial APIs): how often open payments are asked about",
    )
    rate_limit: str = Field("100/second", description="per API key (or client IP) request limit")
    buy_rate_limit: str = Field(
        "20/minute",
        description="payments one client IP may start through public /buy links (each is an invoice)",
    )
    auth_failure_rate_limit: str = Field(
        "30/minute",
        description="requests with a missing or wrong API key one client IP may make (then 429)",
    )
    max_streams_per_address: int = Field(
        20, ge=1, description="open event streams of checkout pages per client IP, per process (then 429)"
    )
    max_streams_per_merchant: int = Field(
        500, ge=1, description="open streams of /api/payments/{id}/events per merchant, per process"
    )
    redis_url: str | None = Field(None, description="redis://… to share rate limits across replicas")
    max_body_bytes: int = Field(65536, ge=1024, description="largest accepted request body")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="DEBUG, INFO, WARNING, ERROR"
    )
    log_json: bool = Field(True, description="JSON logs (false: human-readable console)")
    access_log: bool = Field(False, description="log every request (JSON, with its request id)")
    run_workers: bool = Field(
        True, description="run the settlement watcher, scheduler and webhook worker in-process"
    )
    webhook_allow_private: bool | None = Field(
        None,
        description="allow webhook URLs on private, loopback, link-local and metadata addresses "
        "(checked when connecting); default: on in dev, off in production",
    )
    webhook_timeout_seconds: float = Field(
        30, gt=0, le=120, description="a receiver must answer a webhook within this time"
    )
    webhook_disable_after: int = Field(
        5, ge=1, le=1000, description="disable an endpoint after this many consecutive failed events"
    )
    webhook_concurrency: int = Field(
        64, ge=1, le=1000, description="endpoints delivered to at the same time, per worker process"
    )
    webhook_poll_interval_seconds: float = Field(
        1.0, gt=0, description="how often the webhook worker looks for due retries when not woken"
    )
    event_poll_interval_seconds: float = Field(
        0.05, gt=0, description="SQLite: how often the live event feed looks for new events"
    )
    l402_invoice_expiry_seconds: int = Field(
        600, ge=60, le=86400, description="lifetime of the invoice in a 402 challenge"
    )
    l402_token_ttl_seconds: int = Field(
        86400, ge=60, le=365 * 86400, description="how long a paid L402 token opens its resource"
    )
    l402_offer_reuse_seconds: int = Field(
        60, ge=0, le=3600, description="the same offer to the same payer reuses its invoice this long"
    )
    l402_verified_cache_seconds: float = Field(
        30,
        ge=0,
        le=3600,
        description="a verified L402 token is admitted again without re-verifying for this long "
        "(never past its caveats; 0: verify every request, so revocation applies at once)",
    )
    l402_demo_price_sats: int = Field(10, ge=1, le=1_000_000, description="price of /api/l402/premium-data")
    l402_realm: str | None = Field(
        None, description="realm of Payment-scheme challenges; default: the host of the public URL"
    )
    proxy_allow_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="private networks the paid proxy may reach, comma-separated CIDRs or addresses "
        "(e.g. 127.0.0.1,10.0.0.0/8); everything not public is refused otherwise, checked when connecting",
    )
    proxy_timeout_seconds: float = Field(
        30, gt=0, le=600, description="an upstream must answer (and not pause its body) within this time"
    )
    proxy_connect_timeout_seconds: float = Field(
        10, gt=0, le=120, description="connecting to an upstream must take at most this long"
    )
    proxy_max_body_bytes: int = Field(
        1 << 30, ge=1024, description="largest request body the paid proxy streams to an upstream"
    )
    proxy_max_header_bytes: int = Field(
        32768, ge=1024, le=1 << 20, description="largest total size of the headers of a proxied request"
    )
    proxy_max_connections: int = Field(
        512, ge=1, le=100_000, description="upstream connections the paid proxy keeps open, per process"
    )
    proxy_max_concurrent: int = Field(
        128,
        ge=1,
        le=100_000,
        description="requests in flight to one proxy's upstream at once, per process (more: 503), "
        "so a slow upstream cannot hold every connection",
    )
    proxy_config_cache_seconds: float = Field(
        2,
        ge=0,
        le=300,
        description="how long a replica serves a proxy's settings from memory (changes made through "
        "another replica apply after this long)",
    )
    proxy_usage_flush_seconds: float = Field(
        2,
        gt=0,
        le=300,
        description="how often request counters of the paid proxy are written to the database",
    )
    nostr_relays: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Nostr relays (ws:// or wss://, comma-separated) the marketplace's signed events are "
        "published to; none: events are only served by GET /api/agents/events",
    )
    nostr_platform_key: SecretStr | None = Field(
        None,
        description="64-hex secret key the platform signs Nostr events with; default: derived from the "
        "server key",
    )
    agent_challenge_seconds: int = Field(
        300, ge=30, le=3600, description="how long an agent has to sign an identity challenge"
    )
    agent_challenge_rate_limit: str = Field(
        "10/minute", description="identity challenges one public key, and one client address, may ask for"
    )
    shopify_api_version: str = Field(
        "2026-01",
        pattern=r"^\d{4}-(01|04|07|10)$",
        description="Shopify Admin GraphQL API version every store is called with (quarterly, YYYY-MM)",
    )
    shopify_api_base: str = Field(
        "https://{shop}",
        pattern=r"^https?://[^\s]*\{shop\}[^\s]*$",
        description="where a store's Admin API is: {shop} is its myshopify.com domain "
        "(change only to test against a local Shopify stand-in)",
    )
    shopify_timeout_seconds: float = Field(
        15, gt=0, le=120, description="a Shopify Admin API call must answer within this time"
    )
    shopify_catalog_ttl_seconds: int = Field(
        300,
        ge=0,
        le=86400,
        description="how long a store's catalog is served from the cache (products/* webhooks refresh "
        "it sooner)",
    )
    # refunds (/api/refunds): paying customers back over Lightning
    refund_max_fee_percent: Decimal = Field(
        Decimal("1"), ge=0, le=10, description="routing fee cap of a refund payment, in % of its amount"
    )
    refund_min_fee_sats: int = Field(
        10, ge=0, le=100_000, description="routing fee cap of a refund payment at least this many sats"
    )
    refund_pay_wait_seconds: float = Field(
        15,
        gt=0,
        le=120,
        description="POST /api/refunds waits this long for the payment's outcome, "
        "then answers pending (the payment goes on)",
    )
    refund_check_interval_seconds: float = Field(
        30,
        gt=0,
        description="how often pending refunds are looked up (and old claim links expired)",
    )
    refund_claim_ttl_seconds: int = Field(
        7 * 86400,
        ge=300,
        le=90 * 86400,
        description="how long a refund claim link (LNURL-withdraw) can be used",
    )
    refund_lnurl_timeout_seconds: float = Field(
        10, gt=0, le=60, description="timeout of each request to a customer's Lightning address server"
    )
    checkout_frame_ancestors: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="origins allowed to embed the checkout page in a frame, comma-separated "
        "(e.g. https://shop.example); a merchant's own list wins; default: none (not embeddable)",
    )

    # merchant dashboard (/dashboard): sessions, sign-in, and email sign-in links over SMTP
    dashboard_session_idle_seconds: int = Field(
        1800, ge=60, le=7 * 86400, description="a dashboard session ends after this long without a request"
    )
    dashboard_session_max_seconds: int = Field(
        43200, ge=300, le=30 * 86400, description="a dashboard session ends this long after sign-in"
    )
    dashboard_signin_rate_limit: str = Field(
        "10/minute", description="dashboard sign-in attempts (key or email) per client address"
    )
    smtp_host: str | None = Field(
        None, description="SMTP server for dashboard sign-in links by email; unset: sign in with an API key"
    )
    smtp_port: int = Field(587, ge=1, le=65535, description="port of the SMTP server")
    smtp_user: str | None = Field(None, description="SMTP user name (unset: no authentication)")
    smtp_password: SecretStr | None = Field(None, description="SMTP password")
    smtp_from: str = Field("boltgate@localhost", description="From address of sign-in emails")
    smtp_starttls: bool = Field(True, description="upgrade the SMTP connection with STARTTLS")
    smtp_timeout_seconds: float = Field(10, gt=0, le=120, description="an SMTP exchange must end within this")

    # merchant accounts (paid signup, plans and renewal) and platform pages (MCP version, legal texts)
    signup_price_sats: int = Field(
        100, ge=1, le=1_000_000, description="price of a paid signup (POST /api/signup/l402), in sats"
    )
    plans: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["individual:20000:30"],
        description="subscription plans, comma list of tier:priceSats:periodDays (what renewing a "
        "plan costs and how many days it adds)",
    )
    signup_plan_tier: str = Field("individual", description="plan tier of accounts made by a paid signup")
    signup_trial_days: int = Field(
        30, ge=1, le=3650, description="length of a new account's first (trial) period, in days"
    )
    mcp_latest_version: str = Field(
        "2.1.1", description="latest Lightning Enable MCP version (GET /api/mcp/version-check)"
    )
    mcp_minimum_version: str | None = Field(
        None, description="MCP versions below this must update (updateRequired); unset: none must"
    )
    mcp_release_notes: str = Field("", max_length=4000, description="release notes of the latest MCP")
    privacy_policy_file: Path | None = Field(
        None, description="Markdown or plain-text file served at /privacy (unset: a notice that none exists)"
    )
    terms_file: Path | None = Field(
        None, description="Markdown or plain-text file served at /terms (unset: a notice that none exists)"
    )

    @field_validator("plans", mode="before")
    @classmethod
    def _plans(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("plans")
    @classmethod
    def _plans_valid(cls, value: list[str]) -> list[str]:
        from boltgate.merchant.plans import parse_plans

        parse_plans(value)
        return value

    @field_validator("signup_plan_tier")
    @classmethod
    def _signup_tier(cls, value: str, info: ValidationInfo) -> str:
        from boltgate.merchant.plans import parse_plans

        if "plans" in info.data and value not in parse_plans(info.data["plans"]):
            raise ValueError(f"signup_plan_tier {value!r} is not one of the plans")
        return value

    @field_validator("mcp_latest_version", "mcp_minimum_version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        from boltgate.platform.version import parse_version

        if value is not None:
            parse_version(value)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("rate_providers", mode="before")
    @classmethod
    def _providers(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator(
        "rate_limit",
        "buy_rate_limit",
        "auth_failure_rate_limit",
        "agent_challenge_rate_limit",
        "dashboard_signin_rate_limit",
    )
    @classmethod
    def _rate(cls, value: str) -> str:
        from limits import parse

        parse(value)  # raises ValueError on a malformed limit
        return value

    @field_validator("nostr_relays", mode="before")
    @classmethod
    def _relays(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("nostr_relays")
    @classmethod
    def _relays_valid(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("ws://", "wss://")):
                raise ValueError(f"relay {url!r} must be a ws:// or wss:// URL")
        return value

    @field_validator("proxy_allow_networks", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("proxy_allow_networks")
    @classmethod
    def _networks_valid(cls, value: list[str]) -> list[str]:
        from boltgate.kit.netguard import parse_networks

        parse_networks(value)  # raises ValueError on a malformed network
        return value

    @field_validator("checkout_frame_ancestors", mode="before")
    @classmethod
    def _ancestors(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("checkout_frame_ancestors")
    @classmethod
    def _ancestors_valid(cls, value: list[str]) -> list[str]:
        from boltgate.checkout.security import check_origin

        return [check_origin(origin) for origin in value]

    @field_validator("fixed_rates", mode="before")
    @classmethod
    def _fixed_rates(cls, value: object) -> object:
        if isinstance(value, str):
            pairs = {}
            for item in value.split(","):
                if item.strip():
                    code, _, rate = item.partition(":")
                    pairs[code.strip().upper()] = rate.strip()
            return pairs
        return value

    @model_validator(mode="after")
    def _defaults(self) -> Settings:
        if not self.rate_providers:
            self.rate_providers = ["fixed"] if self.mode == "dev" else ["coinbase", "kraken", "coingecko"]
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'boltgate.db').as_posix()}"

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def is_dev(self) -> bool:
        return self.mode == "dev"

    @cached_property
    def lightning_backend(self) -> str:
        """The kind of the Lightning backend (``dev``, ``lnd-rest``…), never its secrets."""
        return connection.parse(self.lightning_url.get_secret_value()).kind

    @cached_property
    def lightning_failover_backend(self) -> str | None:
        url = self.lightning_failover_url
        return None if url is None else connection.parse(url.get_secret_value()).kind

    @property
    def webhooks_may_reach_private(self) -> bool:
        return self.is_dev if self.webhook_allow_private is None else self.webhook_allow_private

    @field_validator("lightning_url", "lightning_failover_url")
    @classmethod
    def _connection_url(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None:
            return None
        if not value.get_secret_value().strip() and info.field_name == "lightning_failover_url":
            return None  # set but empty: no failover
        try:
            connection.parse(value.get_secret_value())
        except connection.ConnectionUrlError as exc:
            raise ValueError(str(exc)) from None
        return value

    def check_production(self) -> None:
        """Refuse to run outside dev mode with anything meant for development only."""
        if self.is_dev:
            return
        problems = []
        secret = self.secret_key.get_secret_value()
        if secret == DEV_SECRET_KEY or len(secret) < 32:
            problems.append("BOLTGATE_SECRET_KEY must be set to a random value of at least 32 characters")
        previous = self.secret_key_previous.get_secret_value() if self.secret_key_previous else ""
        if any(key == DEV_SECRET_KEY or len(key) < 32 for key in split_keys(previous)):
            problems.append(
                "each key of BOLTGATE_SECRET_KEY_PREVIOUS must be at least 32 characters (not the dev key)"
            )
        admin = self.admin_api_key.get_secret_value() if self.admin_api_key is not None else None
        if admin and len(admin) < 32:
            problems.append("BOLTGATE_ADMIN_API_KEY must be at least 32 characters (or unset)")
        if self.lightning_backend == "dev" or self.lightning_failover_backend == "dev":
            problems.append("dev:// (the built-in dev node) is for dev mode only (BOLTGATE_LIGHTNING_URL)")
        if "fixed" in self.rate_providers:
            problems.append("the fixed rate provider is for dev mode only (BOLTGATE_RATE_PROVIDERS)")
        if not self.shopify_api_base.startswith("https://"):
            problems.append("BOLTGATE_SHOPIFY_API_BASE must be an https:// URL (it carries Admin API tokens)")
        if problems:
            raise ConfigError("boltgate refuses to start in production mode: " + "; ".join(problems))
