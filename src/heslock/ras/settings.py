"""The one typed settings object of the RAS, resolved at entry points only.

Precedence, highest first (STYLE.md practice 10)::

    command-line flags  >  HESLOCK_* environment  >  config file (TOML)  >  defaults

Every setting has one canonical name. In the TOML file it is written either flat
(``https_port = 8443``) or in its section (``[https]`` / ``port = 8443``); in the
environment it is ``HESLOCK_`` + the name in capitals (``HESLOCK_HTTPS_PORT``). The
config file itself is named by ``--config`` or ``HESLOCK_CONFIG``. Relative paths in a
config file are relative to that file's directory; elsewhere to the working directory.

Defaults that live in the data directory (database, master key, TLS files) follow
``data_dir`` wherever it came from. Unknown keys in a config file are refused (a typo
must not silently fall back to a default); unknown ``HESLOCK_*`` variables are ignored
because other parties (BGW, RAC) share the prefix.

A bad value is a :class:`~heslock.errors.UsageError` that names the key, where it came
from, and what is wrong — never a traceback.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

import argon2
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from heslock.errors import UsageError

log = logging.getLogger(__name__)

ENV_PREFIX: Final = "HESLOCK_"
CONFIG_ENV: Final = "HESLOCK_CONFIG"
#: TOML sections whose keys are flattened to ``section_key`` setting names.
SECTIONS: Final = frozenset(
    {"https", "xmpp", "tls", "argon2", "token", "otp", "scram", "limits", "smtp", "sms"}
)

#: RFC 7677 section 4: the iteration count SHOULD be at least 4096.
MIN_SCRAM_ITERATIONS: Final = 4096
#: Access tokens longer than a day defeat the point of refresh-token rotation.
MAX_ACCESS_TTL_S: Final = 86_400
#: NIST SP 800-63B 5.1.3: an out-of-band code is valid for at most 10 minutes.
MAX_OTP_TTL_S: Final = 600
#: A request body above 64 MiB is never legitimate here (the largest is a device import).
MAX_BODY_LIMIT: Final = 64 * 1024 * 1024
#: RFC 9106 section 4 minimum memory for Argon2id (first recommended option: 2 GiB; second: 64 MiB).
RFC9106_MIN_MEMORY_KIB: Final = 64 * 1024

_SQLITE = "sqlite+aiosqlite://"
_POSTGRES = "postgresql+asyncpg://"
_URL_ALIASES: Final = {
    "sqlite://": _SQLITE,
    "postgresql://": _POSTGRES,
    "postgres://": _POSTGRES,
}

#: Settings that are filesystem paths (resolved relative to their source).
_PATH_KEYS: Final = frozenset(
    {"data_dir", "tls_cert", "tls_key", "tls_ca", "tls_ca_key", "master_key_file"}
)


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/heslock/ras`` or ``~/.local/share/heslock/ras``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "heslock" / "ras"


class Settings(BaseModel):
    """Everything the RAS reads at start-up. Immutable once built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path
    database_url: str
    domain: str = "localhost"
    log_level: str = "info"

    https_host: str = "127.0.0.1"
    https_port: int = Field(default=8443, ge=0, le=65535)
    xmpp_host: str = "127.0.0.1"
    xmpp_port: int = Field(default=5222, ge=0, le=65535)
    #: Direct TLS (XEP-0368) for gateways, which default to it; 0 picks a free port.
    xmpp_direct_tls_port: int = Field(default=5223, ge=0, le=65535)
    #: XMPP connections negotiating (TLS, SASL, bind) at once; more wait in the listen
    #: backlog (reconnect storms; heslock.xmpp.limits.MAX_PENDING_LOGINS, docs/operations.md).
    xmpp_max_pending_logins: int = Field(default=256, ge=1, le=100_000)

    tls_cert: Path
    tls_key: Path
    tls_ca: Path
    tls_ca_key: Path
    master_key_file: Path

    # argon2-cffi's defaults (RFC 9106 "low memory" profile): ~0.36 s per hash here.
    argon2_time_cost: int = Field(default=argon2.DEFAULT_TIME_COST, ge=1, le=100)
    argon2_memory_cost: int = Field(default=argon2.DEFAULT_MEMORY_COST, ge=8, le=4 * 1024 * 1024)
    argon2_parallelism: int = Field(default=argon2.DEFAULT_PARALLELISM, ge=1, le=64)

    token_access_ttl_s: int = Field(default=900, ge=30, le=MAX_ACCESS_TTL_S)
    token_refresh_ttl_s: int = Field(default=30 * 86_400, ge=60, le=365 * 86_400)
    otp_ttl_s: int = Field(default=MAX_OTP_TTL_S, ge=30, le=MAX_OTP_TTL_S)
    otp_max_attempts: int = Field(default=5, ge=1, le=10)
    scram_iterations: int = Field(default=10_000, ge=MIN_SCRAM_ITERATIONS, le=10_000_000)
    limits_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=MAX_BODY_LIMIT)
    #: Reverse proxies (addresses) whose X-Forwarded-For is believed; empty: the socket
    #: peer is the source address (audit, per-address throttles). Name them explicitly.
    trusted_proxies: tuple[str, ...] = ()

    # UDMS: one-time code delivery (heslock.ras.services.udms.senders). "outbox" writes
    # codes to <data_dir>/outbox.jsonl for `heslock ras outbox`: the development default.
    otp_email_sender: Literal["outbox", "smtp"] = "outbox"
    otp_sms_sender: Literal["outbox", "http"] = "outbox"
    # Caps against SMS pumping (toll fraud): codes per destination per day, all SMS per day.
    otp_sms_per_number_per_day: int = Field(default=5, ge=1, le=1000)
    otp_sms_per_day: int = Field(default=1000, ge=1, le=10_000_000)
    otp_email_per_address_per_day: int = Field(default=20, ge=1, le=1000)
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_tls: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "heslock@localhost"
    smtp_timeout_s: float = Field(default=10.0, gt=0, le=120)
    sms_url: str | None = None  # the SMS gateway's HTTPS endpoint (POST, bearer token)
    sms_token: SecretStr | None = None
    sms_timeout_s: float = Field(default=10.0, gt=0, le=120)
    # UDMS throttling of guessable things (passwords, codes): attempts per window per
    # account and per source address, then a lockout (rate_limit_buckets, all RAS nodes).
    limits_window_s: int = Field(default=900, ge=10, le=86_400)
    limits_lockout_s: int = Field(default=900, ge=10, le=86_400)
    limits_account_attempts: int = Field(default=10, ge=1, le=10_000)
    limits_address_attempts: int = Field(default=100, ge=1, le=1_000_000)
    # Live events (heslock.ras.services.feed): user-visible events older than this are
    # deleted by an hourly sweep on each `ras serve` node.
    feed_retention_days: int = Field(default=90, ge=1, le=3650)
    # Geofencing: people's location reports (personal data) are deleted this many hours
    # after receipt (heslock.ras.services.geofence.service.purge_expired), at most 30 days.
    location_retention_hours: int = Field(default=24, ge=1, le=720)
    # Third-party access (OAuth 2.0, issue 8). The issuer is this server's https URL as
    # apps see it (RFC 8414, RFC 9207 ``iss``); unset, the request's own base URL is used.
    oauth_issuer: str | None = None
    oauth_access_ttl_s: int = Field(default=900, ge=30, le=3600)
    oauth_refresh_ttl_s: int = Field(default=30 * 86_400, ge=60, le=365 * 86_400)
    #: RFC 6749 4.1.2 and RFC 9700: an authorisation code lives at most 10 minutes.
    oauth_code_ttl_s: int = Field(default=300, ge=10, le=600)
    oauth_ticket_ttl_s: int = Field(default=300, ge=30, le=900)
    # Token endpoint throttling (POST /oauth/token): attempts per window per client id and
    # per source address (rate_limit_buckets); a failed client authentication costs
    # oauth_token_failure_weight attempts.
    oauth_token_client_attempts: int = Field(default=60, ge=1, le=100_000)
    oauth_token_address_attempts: int = Field(default=300, ge=1, le=1_000_000)
    oauth_token_window_s: int = Field(default=300, ge=10, le=86_400)
    oauth_token_failure_weight: int = Field(default=5, ge=1, le=100)
    # OAuth housekeeping (heslock.ras.services.oauth.sweep): every oauth_sweep_every_s,
    # delete used/expired codes and tickets, and tokens expired or revoked for longer
    # than oauth_token_keep_days (introspection answers "inactive" for them either way).
    oauth_sweep_every_s: float = Field(default=3600.0, gt=0, le=86_400)
    oauth_token_keep_days: int = Field(default=7, ge=1, le=365)
    # Webhooks (heslock.ras.services.webhooks). Destinations must be https on a public
    # address; webhooks_allow_insecure_loopback also lets http://127.0.0.1 / [::1] /
    # localhost through (demo and tests only: never in production).
    webhooks_allow_insecure_loopback: bool = False
    webhooks_timeout_s: float = Field(default=10.0, gt=0, le=60)
    # Retries: attempt n waits min(max, base * 2**(n-1)), jittered to 50-100 % of that;
    # an event is given up after webhooks_max_attempts attempts.
    webhooks_retry_base_s: float = Field(default=5.0, gt=0, le=3600)
    webhooks_retry_max_s: float = Field(default=6 * 3600.0, gt=0, le=86_400)
    webhooks_max_attempts: int = Field(default=12, ge=1, le=50)
    # Disabled (owner notified) after every attempt failed for this long, or this many
    # events were given up in a row.
    webhooks_disable_after_s: float = Field(default=3 * 86_400.0, gt=0, le=30 * 86_400)
    webhooks_disable_after_events: int = Field(default=20, ge=1, le=10_000)
    # The dispatcher looks at due subscriptions at least this often (and at once on a
    # new feed event of this node).
    webhooks_poll_s: float = Field(default=5.0, gt=0, le=300)
    # New subscriptions per app per hour (and at most webhooks_max_per_grant at once).
    webhooks_create_per_hour: int = Field(default=30, ge=1, le=10_000)
    webhooks_max_per_grant: int = Field(default=10, ge=1, le=100)
    # Several processes (issue 9): `ras serve --workers N` runs N worker processes that
    # share the HTTPS and XMPP ports (SO_REUSEPORT) and reach each other's gateways over
    # the NATS server bus_url (heslock.ras.relay.natsbus), subjects under bus_prefix.
    # Unset bus_url: one process, gateways in-process (LocalBus). docs/operations.md.
    workers: int = Field(default=1, ge=1, le=64)
    bus_url: str | None = None
    bus_prefix: str = "heslock.ras"
    #: Set by the supervisor for its workers (the ports are shared); not for operators.
    reuse_port: bool = False
    # Sharing (issue 7): shares and home invitations one person may create, as a bucket:
    # share_create_burst at once, then share_create_per_hour (429 with Retry-After), and
    # invitation messages one contact may receive per day (more are not sent; the share
    # is made all the same, so the answer says nothing about the contact).
    share_create_burst: int = Field(default=30, ge=1, le=10_000)
    share_create_per_hour: float = Field(default=30.0, gt=0, le=100_000)
    share_invites_per_contact_per_day: int = Field(default=5, ge=1, le=1000)

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        for alias, canonical in _URL_ALIASES.items():
            if value.startswith(alias):
                value = canonical + value.removeprefix(alias)
        if not value.startswith((_SQLITE, _POSTGRES)):
            raise ValueError(
                "must start with sqlite+aiosqlite:// or postgresql+asyncpg:// "
                "(sqlite:// and postgresql:// are accepted as aliases)"
            )
        return value

    @field_validator("domain")
    @classmethod
    def _check_domain(cls, value: str) -> str:
        labels = value.split(".")
        ok = 0 < len(value) <= 253 and all(
            0 < len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii()
            for label in labels
        )
        if not ok:
            raise ValueError("must be a DNS name such as ras.example.org")
        return value.lower()

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of debug, info, warning, error, critical")
        return value.lower()

    @model_validator(mode="after")
    def _check_argon2(self) -> Settings:
        if self.argon2_memory_cost < 8 * self.argon2_parallelism:
            raise ValueError(
                "argon2_memory_cost must be at least 8 KiB per lane (8 x argon2_parallelism)"
            )
        return self

    @model_validator(mode="after")
    def _check_senders(self) -> Settings:
        if self.otp_email_sender == "smtp" and not self.smtp_host:
            raise ValueError("otp_email_sender = 'smtp' needs smtp_host")
        if self.otp_sms_sender == "http":
            if not self.sms_url or self.sms_token is None:
                raise ValueError("otp_sms_sender = 'http' needs sms_url and sms_token")
            loopback = re.match(r"^http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?/", self.sms_url)
            if not self.sms_url.startswith("https://") and not loopback:
                raise ValueError("sms_url must be https:// (plain http only on loopback)")
        return self

    @model_validator(mode="after")
    def _check_workers(self) -> Settings:
        if self.bus_url is not None and not self.bus_url.startswith(("nats://", "tls://")):
            raise ValueError("bus_url must be a nats:// or tls:// URL")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}", self.bus_prefix):
            raise ValueError("bus_prefix must be dot-separated tokens of A-Z a-z 0-9 _ -")
        if self.workers > 1:
            if self.bus_url is None:
                raise ValueError(
                    "workers > 1 needs bus_url (a NATS server, e.g. nats://127.0.0.1:4222)"
                )
            if self.is_sqlite:
                raise ValueError(
                    "workers > 1 needs PostgreSQL: SQLite is one file for one process "
                    "(docs/operations.md, Several workers)"
                )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith(_SQLITE)

    @property
    def weak_password_hashing(self) -> bool:
        """True below RFC 9106's minimum: acceptable in tests, logged in production."""
        return self.argon2_memory_cost < RFC9106_MIN_MEMORY_KIB


FIELDS: Final = frozenset(Settings.model_fields)


def _flatten_toml(data: Mapping[str, Any], path: Path) -> dict[str, tuple[str, Any]]:
    """``{"https": {"port": 1}}`` -> ``{"https_port": ("https.port", 1)}``."""
    flat: dict[str, tuple[str, Any]] = {}
    for key, value in data.items():
        if key in SECTIONS and isinstance(value, dict):
            for sub, sub_value in value.items():
                flat[f"{key}_{sub}"] = (f"{key}.{sub}", sub_value)
        else:
            flat[key] = (key, value)
    for name, (shown, _) in flat.items():
        if name not in FIELDS:
            raise UsageError(f"{path}: unknown setting {shown!r}")
    return flat


def _read_config(path: Path) -> dict[str, tuple[str, Any]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from None
    flat = _flatten_toml(data, path)
    base = path.resolve().parent
    for name, (shown, value) in flat.items():
        if name in _PATH_KEYS and isinstance(value, str):
            candidate = Path(value).expanduser()
            flat[name] = (shown, candidate if candidate.is_absolute() else base / candidate)
    return flat


def load_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Resolve flags > environment > file > defaults into one :class:`Settings`.

    ``flags`` maps setting names to values; ``None`` values mean "not given".
    ``env`` defaults to ``os.environ``. ``config_file`` (or ``HESLOCK_CONFIG``) names
    the TOML file; with neither, no file is read.
    """
    env = os.environ if env is None else env
    given_flags = {k: v for k, v in (flags or {}).items() if v is not None}
    for name in given_flags:
        if name not in FIELDS:
            raise UsageError(f"unknown setting {name!r}")

    if config_file is None and env.get(CONFIG_ENV):
        config_file = Path(env[CONFIG_ENV]).expanduser()
    from_file = _read_config(config_file) if config_file is not None else {}

    layers, shown = _layers(given_flags, env, from_file, config_file)
    values = {name: value for name, (_, value) in layers.items()}
    data_dir = _data_dir(values.get("data_dir"), layers, shown)
    values["data_dir"] = data_dir
    derived = {
        "database_url": f"{_SQLITE}/{data_dir / 'ras.db'}",
        "tls_cert": data_dir / "tls" / "server.pem",
        "tls_key": data_dir / "tls" / "server.key",
        "tls_ca": data_dir / "tls" / "ca.pem",
        "tls_ca_key": data_dir / "tls" / "ca.key",
        "master_key_file": data_dir / "master.key",
    }
    for name, value in derived.items():
        values.setdefault(name, value)
    for name in _PATH_KEYS & values.keys():
        if isinstance(values[name], str):
            values[name] = Path(values[name]).expanduser()

    try:
        settings = Settings.model_validate(values)
    except ValidationError as exc:
        raise _usage_error(exc, layers, shown) from None
    if settings.weak_password_hashing:
        log.warning(
            "argon2 memory cost %d KiB is below RFC 9106's 64 MiB minimum: for tests only",
            settings.argon2_memory_cost,
        )
    return settings


def _layers(
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    from_file: Mapping[str, tuple[str, Any]],
    config_file: Path | None,
) -> tuple[dict[str, tuple[str, Any]], dict[str, str]]:
    """Stack file < environment < flags: name -> (source, value), and how each was spelt."""
    layers: dict[str, tuple[str, Any]] = {}
    shown: dict[str, str] = {}
    for name, (spelt, value) in from_file.items():
        layers[name] = (f"config file {config_file}", value)
        shown[name] = spelt
    for name in FIELDS:
        var = ENV_PREFIX + name.upper()
        if var in env:
            value = env[var]
            if name in _PATH_KEYS:
                value = str(Path(value).expanduser())
            layers[name] = (f"environment {var}", value)
            shown[name] = name
    for name, value in flags.items():
        layers[name] = ("command line", value)
        shown[name] = name
    return layers, shown


def _data_dir(value: Any, layers: Mapping[str, tuple[str, Any]], shown: Mapping[str, str]) -> Path:
    if value is None:
        return default_data_dir()
    if isinstance(value, Path):
        return value.absolute()
    if isinstance(value, str) and value:
        return Path(value).expanduser().absolute()
    source = layers["data_dir"][0]
    raise UsageError(f"invalid setting {shown['data_dir']!r} (from {source}): must be a path")


def _redact(name: str, value: Any) -> Any:
    """Never echo a password embedded in a database URL."""
    if name == "database_url" and isinstance(value, str):
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", value)
    return value


def _usage_error(
    exc: ValidationError, layers: Mapping[str, tuple[str, Any]], shown: Mapping[str, str]
) -> UsageError:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        name = str(error["loc"][0]) if error["loc"] else ""
        message = str(error["msg"]).removeprefix("Value error, ")
        if name in layers:
            source, value = layers[name]
            problems.append(
                f"invalid setting {shown[name]!r} (from {source}): {message}, "
                f"got {_redact(name, value)!r}"
            )
        elif name:
            problems.append(f"invalid setting {name!r}: {message}")
        else:
            problems.append(f"invalid settings: {message}")
    return UsageError("; ".join(problems))
