"""Code delivery: the outbox file, SMTP (against an in-process server: plain, STARTTLS,
implicit TLS, AUTH) and the HTTP SMS gateway; failures become DeliveryFailed; the code
never reaches a log."""

from __future__ import annotations

import json
import logging
import ssl
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from heslock.ras.services.udms.senders import (
    DeliveryFailed,
    HttpSmsSender,
    OutboxSender,
    OutgoingCode,
    SmtpSender,
    senders_from_settings,
)
from heslock.ras.settings import load_settings
from heslock.ras.tls import client_context, create_certificates, server_context
from tests.unit.ras.udms.servers import HttpServer, SmtpServer

CODE = "493817"


def _message(channel: str = "email", to: str = "bob@example.org") -> OutgoingCode:
    return OutgoingCode(
        channel=channel,
        destination=to,
        code=CODE,
        purpose="login",
        domain="ras.example.org",
        ttl_s=600,
        at=datetime(2030, 1, 1, tzinfo=UTC),
    )


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    d = tmp_path_factory.mktemp("tls")
    create_certificates(d / "ca.pem", d / "ca.key", d / "s.pem", d / "s.key", "localhost")
    return server_context(d / "s.pem", d / "s.key"), client_context(d / "ca.pem")


@pytest.fixture
async def smtp(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> AsyncIterator[SmtpServer]:
    server = SmtpServer(tls[0], credentials=("mailer", "s3cret-pass"))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_outbox_appends_json_lines_owner_only(tmp_path: Path) -> None:
    outbox = OutboxSender(tmp_path / "outbox.jsonl")
    await outbox.send(_message())
    await outbox.send(_message("sms", "+442079460958"))
    lines = [json.loads(line) for line in (tmp_path / "outbox.jsonl").read_text().splitlines()]
    assert [(m["channel"], m["to"], m["code"]) for m in lines] == [
        ("email", "bob@example.org", CODE),
        ("sms", "+442079460958", CODE),
    ]
    assert lines[1]["text"] == f"heslock code {CODE} (valid 10 min)\n\n@ras.example.org #{CODE}"
    assert stat.S_IMODE((tmp_path / "outbox.jsonl").stat().st_mode) == 0o600


async def test_outbox_failure_is_delivery_failed(tmp_path: Path) -> None:
    with pytest.raises(DeliveryFailed):
        await OutboxSender(tmp_path / "missing-dir" / "outbox.jsonl").send(_message())


async def test_smtp_starttls_with_auth(
    smtp: SmtpServer, tls: tuple[ssl.SSLContext, ssl.SSLContext], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sender = SmtpSender(
        "127.0.0.1",
        smtp.port,
        "heslock@ras.example.org",
        tls="starttls",
        username="mailer",
        password="s3cret-pass",
        tls_context=tls[1],
    )
    await sender.send(_message())
    (mail,) = smtp.mails
    assert (mail.tls, mail.authenticated_as) == (True, "mailer")
    assert mail.recipients == ["bob@example.org"]
    assert mail.message["Subject"] == "Your heslock login code"
    assert CODE in mail.message.get_payload()
    assert CODE not in caplog.text
    assert "s3cret-pass" not in caplog.text


async def test_smtp_wrong_password_is_delivery_failed(
    smtp: SmtpServer, tls: tuple[ssl.SSLContext, ssl.SSLContext], caplog: pytest.LogCaptureFixture
) -> None:
    sender = SmtpSender(
        "127.0.0.1",
        smtp.port,
        "heslock@ras.example.org",
        tls="starttls",
        username="mailer",
        password="wrong",
        tls_context=tls[1],
    )
    with pytest.raises(DeliveryFailed):
        await sender.send(_message())
    assert smtp.mails == []
    assert CODE not in caplog.text


async def test_smtp_implicit_tls_and_plain(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    implicit = SmtpServer(tls[0])
    await implicit.start(implicit_tls=True)
    plain = SmtpServer()
    await plain.start()
    try:
        await SmtpSender(
            "127.0.0.1", implicit.port, "a@b.example", tls="tls", tls_context=tls[1]
        ).send(_message())
        await SmtpSender("127.0.0.1", plain.port, "a@b.example", tls="none").send(_message())
    finally:
        await implicit.stop()
        await plain.stop()
    assert [m.tls for m in implicit.mails + plain.mails] == [True, False]


async def test_smtp_unreachable_is_delivery_failed() -> None:
    server = SmtpServer()
    await server.start()
    port = server.port
    await server.stop()
    with pytest.raises(DeliveryFailed):
        await SmtpSender("127.0.0.1", port, "a@b.example", tls="none", timeout_s=2).send(_message())


async def test_http_sms_gateway(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    gateway = HttpServer(202)
    await gateway.start()
    try:
        url = f"http://127.0.0.1:{gateway.port}/v1/sms"
        await HttpSmsSender(url, "tok-123").send(_message("sms", "+442079460958"))
    finally:
        await gateway.stop()
    (request,) = gateway.requests
    assert (request.method, request.path) == ("POST", "/v1/sms")
    assert request.headers["authorization"] == "Bearer tok-123"
    assert request.headers["content-type"] == "application/json"
    body = json.loads(request.body)
    assert body["to"] == "+442079460958"
    assert body["text"].startswith(f"heslock code {CODE}")
    assert len(body["text"]) <= 160
    assert CODE not in caplog.text
    assert "tok-123" not in caplog.text


@pytest.mark.parametrize("status", [400, 401, 500, 503])
async def test_http_sms_gateway_refusal(status: int) -> None:
    gateway = HttpServer(status)
    await gateway.start()
    try:
        with pytest.raises(DeliveryFailed):
            await HttpSmsSender(f"http://127.0.0.1:{gateway.port}/", "t").send(_message("sms"))
    finally:
        await gateway.stop()


def test_senders_from_settings(tmp_path: Path) -> None:
    base = {"data_dir": tmp_path}
    default = senders_from_settings(load_settings(base, env={}))
    assert isinstance(default.email, OutboxSender)
    assert default.sms is default.email
    configured = senders_from_settings(
        load_settings(
            {
                **base,
                "otp_email_sender": "smtp",
                "smtp_host": "mail.example.org",
                "otp_sms_sender": "http",
                "sms_url": "https://sms.example.org/send",
            },
            env={"HESLOCK_SMS_TOKEN": "tok", "HESLOCK_SMTP_PASSWORD": "pw"},
        )
    )
    assert isinstance(configured.email, SmtpSender)
    assert isinstance(configured.sms, HttpSmsSender)
    assert configured.for_channel("sms") is configured.sms


def test_outgoing_code_repr_hides_the_code() -> None:
    assert CODE not in repr(_message())
