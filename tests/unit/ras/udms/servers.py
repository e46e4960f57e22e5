"""Tiny in-process servers for sender tests: SMTP (RFC 5321 subset) and an HTTP endpoint.

aiosmtpd is not a dependency, so :class:`SmtpServer` speaks just enough SMTP for a real
client library: EHLO/HELO, STARTTLS (RFC 3207), AUTH PLAIN (RFC 4616), MAIL, RCPT, DATA
with dot-unstuffing, RSET, NOOP, QUIT. :class:`HttpServer` answers one status to every
POST and records what it got. Both bind 127.0.0.1 port 0 and wait for their connection
handlers on stop, so no task outlives a test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: Message
    authenticated_as: str | None
    tls: bool


@dataclass
class _Session:
    authenticated_as: str | None = None
    sender: str = ""
    recipients: list[str] = field(default_factory=list)
    tls: bool = False


class _Server:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    async def start(self, *, implicit_tls: bool = False) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", 0, ssl=self.tls if implicit_tls else None
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5)


class SmtpServer(_Server):
    def __init__(
        self, tls: ssl.SSLContext | None = None, credentials: tuple[str, str] | None = None
    ) -> None:
        super().__init__(tls)
        self.credentials = credentials
        self.mails: list[Mail] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(tls=writer.get_extra_info("sslcontext") is not None)

        async def reply(text: str) -> None:
            writer.write(text.encode() + b"\r\n")
            await writer.drain()

        await reply("220 test.invalid ESMTP")
        while line := await reader.readline():
            command = line.decode().rstrip("\r\n")
            verb = command.split(" ", 1)[0].upper()
            if verb == "EHLO":
                features = ["test.invalid", "8BITMIME"]
                if self.tls is not None and not session.tls:
                    features.append("STARTTLS")
                if self.credentials is not None:
                    features.append("AUTH PLAIN")
                lines = [f"250-{f}" for f in features[:-1]] + [f"250 {features[-1]}"]
                await reply("\r\n".join(lines))
            elif verb == "HELO":
                await reply("250 test.invalid")
            elif verb == "STARTTLS" and self.tls is not None and not session.tls:
                await reply("220 go ahead")
                await writer.start_tls(self.tls)
                session = _Session(tls=True)
            elif verb == "AUTH" and self.credentials is not None:
                parts = command.split(" ")
                _, user, password = base64.b64decode(parts[2]).decode().split("\0")
                if (user, password) == self.credentials:
                    session.authenticated_as = user
                    await reply("235 2.7.0 authenticated")
                else:
                    await reply("535 5.7.8 bad credentials")
            elif verb == "MAIL":
                if self.credentials is not None and session.authenticated_as is None:
                    await reply("530 5.7.0 authentication required")
                    continue
                session.sender = command.split(":", 1)[1].strip().strip("<>").split(">")[0]
                await reply("250 ok")
            elif verb == "RCPT":
                session.recipients.append(command.split(":", 1)[1].strip().strip("<>"))
                await reply("250 ok")
            elif verb == "DATA":
                await reply("354 end with <CRLF>.<CRLF>")
                body = bytearray()
                while (data := await reader.readline()) != b".\r\n":
                    body += data[1:] if data.startswith(b"..") else data
                self.mails.append(
                    Mail(
                        session.sender,
                        session.recipients,
                        message_from_bytes(bytes(body)),
                        session.authenticated_as,
                        session.tls,
                    )
                )
                session.recipients = []
                await reply("250 queued")
            elif verb in {"RSET", "NOOP"}:
                await reply("250 ok")
            elif verb == "QUIT":
                await reply("221 bye")
                return
            else:
                await reply("502 not implemented")


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class HttpServer(_Server):
    def __init__(self, status: int = 202) -> None:
        super().__init__()
        self.status = status
        self.requests: list[Request] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request_line := await reader.readline():
            method, path, _ = request_line.decode().split(" ", 2)
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Request(method, path, headers, body))
            head = f"HTTP/1.1 {self.status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            writer.write(head.encode())
            await writer.drain()
            return
