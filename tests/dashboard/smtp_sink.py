"""A minimal SMTP server on loopback (RFC 5321 subset) that keeps every message it accepts.

It speaks what a mail client needs to hand over a message: EHLO/HELO, MAIL, RCPT, DATA (with
dot-unstuffing), RSET, NOOP and QUIT; everything else is answered 502. No TLS, no AUTH: the
gateway under test is configured without STARTTLS and without a user.
"""

from __future__ import annotations

import asyncio
import email
from dataclasses import dataclass, field
from email.message import Message


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: Message

    @property
    def text(self) -> str:
        payload = self.message.get_payload(decode=True)
        assert isinstance(payload, bytes)
        return payload.decode()


@dataclass
class SmtpSink:
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[Received] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._session, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        async with asyncio.timeout(timeout), self.arrived:
            await self.arrived.wait_for(lambda: len(self.messages) >= count)
        return self.messages

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def reply(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        sender, recipients = "", []
        await reply("220 sink ESMTP ready")
        try:
            while line := await reader.readline():
                command = line.decode("ascii", "replace").rstrip("\r\n")
                verb = command[:4].upper()
                if verb == "EHLO":
                    await reply("250-sink greets you")
                    await reply("250-8BITMIME")
                    await reply("250 SIZE 1000000")
                elif verb == "HELO":
                    await reply("250 sink")
                elif verb == "MAIL":
                    sender, recipients = command.split(":", 1)[1].strip().strip("<>").split(">")[0], []
                    await reply("250 OK")
                elif verb == "RCPT":
                    recipients.append(command.split(":", 1)[1].strip().strip("<>"))
                    await reply("250 OK")
                elif verb == "DATA":
                    if not recipients:
                        await reply("503 need RCPT first")
                        continue
                    await reply("354 end with <CRLF>.<CRLF>")
                    lines = []
                    while True:
                        data = await reader.readline()
                        if data in (b".\r\n", b".\n", b""):
                            break
                        lines.append(data[1:] if data.startswith(b"..") else data)
                    message = email.message_from_bytes(b"".join(lines))
                    async with self.arrived:
                        self.messages.append(Received(sender, recipients, message))
                        self.arrived.notify_all()
                    await reply("250 OK queued")
                elif verb == "RSET":
                    sender, recipients = "", []
                    await reply("250 OK")
                elif verb == "NOOP":
                    await reply("250 OK")
                elif verb == "QUIT":
                    await reply("221 bye")
                    break
                else:
                    await reply("502 command not implemented")
        finally:
            writer.close()
