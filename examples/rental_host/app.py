"""The rental host's web app (Starlette): connect, list locks, bookings, webhooks.

A third-party service: it talks to the RAS only through its public API, with the token
the host granted it on the RAS's consent page, and it imports nothing from heslock.

Pages: ``/`` (state, locks, bookings, a booking form), ``/connect`` (starts the OAuth
authorisation), ``/callback`` (the redirect URI), ``POST /bookings``,
``POST /bookings/{id}/cancel``, ``POST /webhooks`` (the RAS's deliveries) and
``GET /api/state`` (the same state as JSON, for scripts and tests).

The app has no login of its own: it is one host's tool, listening on loopback by default.
Put it behind your own authentication before exposing it.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import secrets
import shlex
import ssl
import sys
import time
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from authlib.deprecate import AuthlibDeprecationWarning  # type: ignore[import-untyped]
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from .store import Booking, Store
from .webhooks import WebhookRejected, verify

with warnings.catch_warnings():
    # authlib warns at import that it would prefer the httpx2 package; httpx is what we have.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.base_client import OAuthError  # type: ignore[import-untyped]
    from authlib.integrations.httpx_client import AsyncOAuth2Client  # type: ignore[import-untyped]

log = logging.getLogger("rental_host")

#: What the app asks the host for: see the locks, manage guest shares, receive events.
SCOPES = "locks:read shares:manage events:read"
#: The events the app subscribes to (feed kinds, docs/api.md "Live events").
EVENTS = ["command.ok", "share.accepted", "share.revoked"]
#: Stands in for the host's own heslock app (not part of this app): see its docstring.
USER_APP = Path(__file__).with_name("user_app.py")
#: Largest webhook body the app reads.
MAX_WEBHOOK_BYTES = 256 * 1024


@dataclass(frozen=True)
class Config:
    ras_url: str  # the RAS's issuer URL, e.g. https://127.0.0.1:8443
    client_id: str
    client_secret: str
    public_url: str  # where the host's browser and the RAS reach this app
    db_path: str = "rental_host.db"
    ca_file: Path | None = None  # the RAS's CA (a demo RAS signs its own certificate)

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url}/callback"

    @property
    def webhook_url(self) -> str:
        return f"{self.public_url}/webhooks"


class NotConnected(Exception):
    """No usable grant: the host must connect (again)."""


class RasError(Exception):
    """The RAS refused a call: its problem's title/detail."""

    def __init__(self, response: httpx.Response) -> None:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        detail = body.get("detail") or body.get("title") or response.reason_phrase
        super().__init__(f"RAS answered {response.status_code}: {detail}")
        self.status_code = response.status_code


class Ras:
    """The RAS as this app sees it: OAuth endpoints and the API with the host's token."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        verify_tls: ssl.SSLContext | bool = True
        if config.ca_file is not None:
            verify_tls = ssl.create_default_context(cafile=str(config.ca_file))
        self.oauth = AsyncOAuth2Client(
            client_id=config.client_id,
            client_secret=config.client_secret,  # HTTP Basic at the token endpoint
            scope=SCOPES,
            redirect_uri=config.redirect_uri,
            code_challenge_method="S256",
            update_token=self._token_updated,
            token=store.token(),
            verify=verify_tls,
            timeout=15,
        )
        self.metadata: dict[str, Any] = {}

    async def close(self) -> None:
        await self.oauth.aclose()

    async def _token_updated(self, token: dict[str, Any], **_old: Any) -> None:
        # authlib calls this after each refresh: the RAS rotated the refresh token, and
        # the old one is dead (presenting it again would revoke the whole grant).
        self.store.save_token(dict(token))

    async def discover(self) -> dict[str, Any]:
        """RFC 8414 metadata, once; its issuer must be the RAS we were configured with."""
        if not self.metadata:
            url = f"{self.config.ras_url}/.well-known/oauth-authorization-server"
            response = await self.oauth.request("GET", url, withhold_token=True)
            if response.status_code != 200:
                raise RasError(response)
            metadata = response.json()
            if metadata.get("issuer") != self.config.ras_url:
                raise RuntimeError(f"the RAS says its issuer is {metadata.get('issuer')!r}")
            self.oauth.metadata["token_endpoint"] = metadata["token_endpoint"]
            self.metadata = metadata
        return self.metadata

    # ------------------------------------------------------------------ connecting

    async def authorization_url(self) -> str:
        """A fresh authorisation request (state and PKCE verifier kept server-side)."""
        metadata = await self.discover()
        verifier = secrets.token_urlsafe(48)
        url, state = self.oauth.create_authorization_url(
            metadata["authorization_endpoint"], code_verifier=verifier
        )
        self.store.add_pending(state, verifier)
        return str(url)

    async def finish(self, query: dict[str, str]) -> None:
        """The redirect back from the consent page: check, then redeem the code."""
        metadata = await self.discover()
        verifier = self.store.take_pending(query.get("state", ""))
        if verifier is None:
            raise ValueError("unknown or expired state: start again from /connect")
        # RFC 9207: the answer must name the server we sent the host to (mix-up attacks).
        if query.get("iss") != metadata["issuer"]:
            raise ValueError("the authorisation response is not from our RAS (iss)")
        if "error" in query:
            raise ValueError(f"the host did not allow it ({query['error']})")
        if not query.get("code"):
            raise ValueError("no code in the authorisation response")
        token = await self.oauth.fetch_token(
            metadata["token_endpoint"],
            grant_type="authorization_code",
            code=query["code"],
            code_verifier=verifier,
            redirect_uri=self.config.redirect_uri,
        )
        self.store.save_token(dict(token))

    # ------------------------------------------------------------------ the API

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API call with the host's token, refreshed first when it is about to expire."""
        if self.oauth.token is None:
            raise NotConnected
        await self.discover()
        url = f"{self.config.ras_url}{path}"
        response = await self._send(method, url, **kwargs)
        if response.status_code == 401:
            # The access token died before its time (the RAS revoked it): refresh once.
            # If the grant itself is gone, the refresh is refused and we disconnect.
            self.oauth.token["expires_at"] = 0
            response = await self._send(method, url, **kwargs)
            if response.status_code == 401:
                raise NotConnected
        return response

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.oauth.request(method, url, **kwargs)
        except OAuthError as error:  # the refresh was refused: the grant is gone
            log.warning("the RAS refused our refresh token (%s): reconnect", error.error)
            self.store.forget_token()
            self.oauth.token = None
            raise NotConnected from None
        if not isinstance(response, httpx.Response):
            raise TypeError("authlib answered something other than an httpx response")
        return response

    async def json(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        response = await self.call(method, path, **kwargs)
        if response.status_code != expect:
            raise RasError(response)
        return response.json() if response.content else None


class RentalHost:
    """What the pages do."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = Store(config.db_path)
        self.ras = Ras(config, self.store)

    async def close(self) -> None:
        await self.ras.close()
        self.store.close()

    # ------------------------------------------------------------------ locks, bookings

    async def locks(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self.ras.json("GET", "/v1/locks")
        return found

    async def book(
        self, lock_id: str, guest: str, check_in: datetime, check_out: datetime
    ) -> Booking:
        """A guest share of one lock, valid from check-in to check-out only."""
        if check_out <= check_in:
            raise ValueError("check-out must be after check-in")
        locks = {lock["id"]: lock for lock in await self.locks()}
        if lock_id not in locks:
            raise ValueError("that lock is not one the host granted to this app")
        invitee = {"phone": guest} if guest.startswith("+") else {"email": guest}
        share = await self.ras.json(
            "POST",
            "/v1/shares",
            expect=201,
            json={
                "invitee": invitee,
                "lock_ids": [lock_id],
                "role": "guest",
                "permissions": ["operate"],
                "paths": ["remote", "nearby"],
                "validity": {
                    "kind": "from_until",
                    "not_before": _iso(check_in),
                    "not_after": _iso(check_out),
                },
                "label": f"booking {guest}"[:64],
            },
        )
        return self.store.add_booking(
            lock_id,
            locks[lock_id]["name"],
            guest,
            _iso(check_in),
            _iso(check_out),
            share["id"],
        )

    async def cancel(self, booking_id: str) -> None:
        booking = self.store.booking(booking_id)
        if booking is None:
            raise ValueError("no such booking")
        response = await self.ras.call("POST", f"/v1/shares/{booking.share_id}/revoke")
        # 409: revoked already (by the guest, or the host in their own app): same outcome.
        if response.status_code not in (200, 409):
            raise RasError(response)
        self.store.cancelled(booking_id)

    # ------------------------------------------------------------------ webhooks

    async def subscribe(self) -> None:
        """After each connection: one subscription for our webhook URL (the secret is
        shown once, so it goes straight to the store)."""
        old = self.store.subscription()
        if old is not None:
            with contextlib.suppress(NotConnected, httpx.HTTPError):
                await self.ras.call("DELETE", f"/v1/webhooks/{old['id']}")
        response = await self.ras.call(
            "POST",
            "/v1/webhooks",
            json={
                "url": self.config.webhook_url,
                "events": EVENTS,
                "description": "rental host: guest arrivals",
            },
        )
        if response.status_code != 201:
            log.warning("no webhook subscription: %s", RasError(response))
            return
        body = response.json()
        self.store.save_subscription(body["id"], body["url"], body["secret"])

    async def on_event(self, event: dict[str, Any]) -> None:
        """One verified, new event (body of a delivery: ``type``, ``data``)."""
        kind = event.get("type")
        data = event.get("data") or {}
        payload = data.get("payload") or {}
        if kind == "share.accepted":
            booking = self.store.by_share(str(payload.get("share_id")))
            if booking is not None and payload.get("grantee_id"):
                self.store.accepted(booking.id, str(payload["grantee_id"]))
        elif kind == "share.revoked":
            booking = self.store.by_share(str(payload.get("share_id")))
            if booking is not None and booking.status in ("invited", "accepted"):
                self.store.cancelled(booking.id)
        elif kind == "command.ok" and payload.get("command") == "unlock":
            await self._maybe_arrived(data, str(event.get("timestamp")))

    async def _maybe_arrived(self, data: dict[str, Any], when: str) -> None:
        """The guest's first successful unlock of the booked lock during the booking."""
        at = datetime.fromisoformat(str(data.get("created_at") or when))
        actor = data.get("actor_id")
        for booking in self.store.bookings():
            if booking.lock_id != data.get("lock_id") or booking.status not in (
                "invited",
                "accepted",
            ):
                continue
            if not (
                datetime.fromisoformat(booking.check_in)
                <= at
                < datetime.fromisoformat(booking.check_out)
            ):
                continue
            grantee = booking.grantee_id or await self._grantee(booking)
            if grantee is not None and grantee == actor:
                self.store.arrived(booking.id, _iso(at))
                log.info("booking %s: the guest arrived at %s", booking.id, _iso(at))

    async def _grantee(self, booking: Booking) -> str | None:
        """Who accepted the invitation, if the share.accepted delivery has not come yet."""
        share = await self.ras.json("GET", f"/v1/shares/{booking.share_id}")
        grantee = share.get("grantee_id")
        if grantee is not None:
            self.store.accepted(booking.id, str(grantee))
        return None if grantee is None else str(grantee)


# ====================================================================== HTTP


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _aware(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{name}: not an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        raise ValueError(f"{name}: give a time zone (e.g. 2026-12-01T15:00+01:00 or ...Z)")
    return moment


def _page(body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Rental host</title>"
        "<style>body{font-family:sans-serif;max-width:48em;margin:2em auto}"
        "td,th{padding:.2em .6em;text-align:left}</style></head><body>"
        f"<h1>Rental host</h1>{body}</body></html>",
        status_code=status_code,
    )


def _error(message: str, status_code: int = 400) -> HTMLResponse:
    return _page(
        f"<p><strong>{html.escape(message)}</strong></p><p><a href=/>Back</a></p>", status_code
    )


def _host(request: Request) -> RentalHost:
    host: RentalHost = request.app.state.host
    return host


def _foreign(request: Request) -> bool:
    """A form post from another site (browsers send Origin on a cross-site POST): a page
    elsewhere must not make the host's browser book or cancel here."""
    origin = request.headers.get("origin")
    return origin is not None and origin != _host(request).config.public_url


async def home(request: Request) -> Response:
    host = _host(request)
    e = html.escape
    try:
        locks = await host.locks()
    except NotConnected:
        return _page(
            "<p>Not connected to the host's heslock account.</p><p><a href=/connect>Connect</a></p>"
        )
    except RasError as error:
        return _error(str(error), 502)
    sub = host.store.subscription()
    rows = "".join(
        f"<tr><td>{e(b.lock_name)}</td><td>{e(b.guest)}</td><td>{e(b.check_in)}</td>"
        f"<td>{e(b.check_out)}</td><td>{e(b.status)}"
        f"{' at ' + e(b.arrived_at) if b.arrived_at else ''}</td><td>"
        + (
            f"<form method=post action=/bookings/{e(b.id)}/cancel><button>Cancel</button></form>"
            if b.status in ("invited", "accepted")
            else ""
        )
        + "</td></tr>"
        for b in host.store.bookings()
    )
    options = "".join(f'<option value="{e(lk["id"])}">{e(lk["name"])}</option>' for lk in locks)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    body = (
        f"<p>Connected. Webhooks: {'subscribed' if sub else 'not subscribed'}. "
        "<a href=/connect>Connect again</a></p>"
        "<h2>Locks the host granted</h2><ul>"
        + "".join(f"<li>{e(lk['name'])} <small>{e(lk['id'])}</small></li>" for lk in locks)
        + "</ul><h2>Bookings</h2><table><tr><th>Lock</th><th>Guest</th><th>Check-in</th>"
        f"<th>Check-out</th><th>Status</th><th></th></tr>{rows}</table>"
        "<h2>New booking</h2><form method=post action=/bookings>"
        f"<p><label>Lock <select name=lock_id>{options}</select></label></p>"
        "<p><label>Guest's e-mail (or phone, +...) <input name=guest required></label></p>"
        f"<p><label>Check-in <input name=check_in value={_iso(now)} required></label></p>"
        f"<p><label>Check-out <input name=check_out value={_iso(now + timedelta(days=2))} "
        "required></label></p><p><button>Invite the guest</button></p></form>"
    )
    return _page(body)


async def connect(request: Request) -> Response:
    url = await _host(request).ras.authorization_url()
    e = html.escape
    helper = shlex.join([sys.executable, str(USER_APP), "--profile", "demo", "approve", url])
    return _page(
        "<p>Open this authorisation request <strong>from your heslock app</strong> "
        "(it signs you in for the consent page), choose the locks, and Allow:</p>"
        f'<p><a href="{e(url)}"><code style="word-break:break-all">{e(url)}</code></a></p>'
        "<p>With the heslock command line (e.g. the demo's profile), this prints the "
        "consent page's address to open in your browser:</p>"
        f'<pre style="white-space:pre-wrap;word-break:break-all">{e(helper)}</pre>'
        "<p>The RAS then sends your browser back here.</p>"
    )


async def callback(request: Request) -> Response:
    host = _host(request)
    try:
        await host.ras.finish(dict(request.query_params))
    except ValueError as error:
        return _error(str(error))
    except OAuthError as error:
        return _error(f"the RAS refused the code: {error.error}")
    await host.subscribe()
    return RedirectResponse("/", status_code=303)


async def create_booking(request: Request) -> Response:
    host = _host(request)
    if _foreign(request):
        return _error("this form was posted from another site", 403)
    form = await request.form()
    try:
        booking = await host.book(
            str(form.get("lock_id", "")),
            str(form.get("guest", "")).strip(),
            _aware(str(form.get("check_in", "")), "check-in"),
            _aware(str(form.get("check_out", "")), "check-out"),
        )
    except ValueError as error:
        return _error(str(error), 422)
    except RasError as error:
        return _error(str(error), 502)
    except NotConnected:
        return RedirectResponse("/connect", status_code=303)
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(booking.to_json(), status_code=201)
    return RedirectResponse("/", status_code=303)


async def cancel_booking(request: Request) -> Response:
    if _foreign(request):
        return _error("this form was posted from another site", 403)
    try:
        await _host(request).cancel(request.path_params["booking_id"])
    except ValueError as error:
        return _error(str(error), 404)
    except RasError as error:
        return _error(str(error), 502)
    except NotConnected:
        return RedirectResponse("/connect", status_code=303)
    return RedirectResponse("/", status_code=303)


async def receive_webhook(request: Request) -> Response:
    host = _host(request)
    sub = host.store.subscription()
    length = request.headers.get("content-length", "0")
    if not length.isdigit() or int(length) > MAX_WEBHOOK_BYTES:
        return JSONResponse({"error": "no length, or too large"}, status_code=413)
    body = await request.body()
    if sub is None:
        return JSONResponse({"error": "no subscription"}, status_code=404)
    try:
        delivery = verify([sub["secret"]], request.headers, body, time.time())
        event = json.loads(body)
    except WebhookRejected as error:
        log.warning("webhook refused: %s", error)
        return JSONResponse({"error": str(error)}, status_code=401)
    except ValueError:
        event = None
    if not isinstance(event, dict):
        return JSONResponse({"error": "the body is not a JSON object"}, status_code=400)
    if not host.store.first_sighting(delivery.id):
        return JSONResponse({"duplicate": True})  # 2xx: the RAS stops retrying it
    try:
        await host.on_event(event)
    except Exception:
        host.store.unsee(delivery.id)  # a 5xx: the RAS retries, and the retry is handled
        raise
    return JSONResponse({"ok": True})


async def state(request: Request) -> Response:
    host = _host(request)
    sub = host.store.subscription()
    return JSONResponse(
        {
            "connected": host.store.token() is not None,
            "subscription": None if sub is None else {"id": sub["id"], "url": sub["url"]},
            "bookings": [b.to_json() for b in host.store.bookings()],
        }
    )


def create_app(config: Config) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.host = RentalHost(config)
        try:
            yield
        finally:
            await app.state.host.close()

    return Starlette(
        routes=[
            Route("/", home),
            Route("/connect", connect),
            Route("/callback", callback),
            Route("/bookings", create_booking, methods=["POST"]),
            Route("/bookings/{booking_id}/cancel", cancel_booking, methods=["POST"]),
            Route("/webhooks", receive_webhook, methods=["POST"]),
            Route("/api/state", state),
        ],
        lifespan=lifespan,
    )


__all__ = ["Config", "RentalHost", "create_app"]
