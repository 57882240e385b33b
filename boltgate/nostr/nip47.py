"""Nostr Wallet Connect (NIP-47), the client side: a wallet service reached through relays.

nostr-protocol/nips ``47.md`` (and ``44.md`` for the encryption). The connection string gives the
wallet service's public key, its relays and our secret key; from that:

- **info** (kind 13194, replaceable, published by the wallet): ``content`` lists the methods this
  connection may call, the ``encryption`` tag the schemes it speaks (``nip44_v2``, ``nip04``; no
  tag means NIP-04 only), the ``notifications`` tag the notification types it sends;
- **request** (kind 23194, ours): tags ``["p", wallet]``, ``["encryption", "nip44_v2"]`` and
  ``["expiration", t]`` (NIP-40: a wallet ignores a request that reaches it after ``t``);
  ``content`` is the NIP-44 encryption of ``{"method": …, "params": {…}}``;
- **response** (kind 23195, the wallet's): tags ``["p", us]`` and ``["e", request id]``; the
  content decrypts to ``{"result_type": method, "error": {"code", "message"} | null, "result": …}``;
- **notification** (kind 23197, NIP-44; 23196 is the same in NIP-04): tag ``["p", us]``, content
  ``{"notification_type": …, "notification": {…}}``.

The response subscription (``authors`` = the wallet, ``#p`` = us, ``#e`` = the request) is open on
every relay, and has its ``EOSE``, before the request is published; the first valid answer from any
relay wins. Only NIP-44 v2 is spoken (NIP-04 is deprecated and unauthenticated).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from boltgate.agent.nostr import Event, pubkey_of, sign_event
from boltgate.nostr import nip44
from boltgate.nostr.relay import RelayPool, RelayUnavailable, Subscription

INFO_KIND = 13194
REQUEST_KIND = 23194
RESPONSE_KIND = 23195
NOTIFICATION_KIND = 23197
NIP44_V2 = "nip44_v2"
NIP04 = "nip04"
NOTIFICATION_SKEW = 600  # seconds the wallet's clock may lag ours (a replayed notification is harmless)
_CLIP = 200


class WalletError(Exception):
    """The wallet service answered with an error (``code`` as NIP-47 lists them)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}" if message else code)


class BadAnswer(Exception):
    """An answer signed by the wallet service that cannot be used (undecryptable, wrong shape)."""


class NoInfo(Exception):
    """No relay holds the wallet service's info event (kind 13194)."""


def _words(values: list[str]) -> frozenset[str]:
    return frozenset(word for value in values for word in value.split())


@dataclass(frozen=True, slots=True)
class WalletInfo:
    """What the info event says this connection can do."""

    methods: frozenset[str]
    encryptions: frozenset[str]
    notifications: frozenset[str]
    created_at: int

    @classmethod
    def of(cls, event: Event) -> WalletInfo:
        def tag(name: str) -> list[str]:
            return [value for t in event.tags if t[0] == name for value in t[1:]]

        encryptions = _words(tag("encryption")) or frozenset({NIP04})  # no tag: NIP-04 only (47.md)
        notifications = _words(tag("notifications"))
        methods = frozenset(event.content.split())
        if not notifications and "notifications" in methods:  # the older form: a bare capability
            notifications = frozenset({"payment_received", "payment_sent"})
        return cls(methods, encryptions, notifications, event.created_at)

    @property
    def speaks_nip44(self) -> bool:
        return NIP44_V2 in self.encryptions


def _clip(text: str) -> str:
    return text if len(text) <= _CLIP else text[: _CLIP - 1] + "…"


class Call:
    """One request: its answer subscription is open; :meth:`send`, then :meth:`answer`."""

    def __init__(self, client: WalletClient, method: str, event: Event, sub: Subscription) -> None:
        self._client = client
        self.method = method
        self.event = event
        self._sub = sub

    @property
    def sent(self) -> bool:
        """Whether the request may have reached the wallet (from the first write on)."""
        return self._sub.sent

    async def send(self) -> None:
        await self._sub.ready()
        if not await self._sub.publish(self.event):
            raise RelayUnavailable("the request could not be written to any relay")

    async def answer(self) -> dict[str, Any]:
        """The ``result`` of the first response; :class:`WalletError` for an error answer."""
        while True:
            event = await self._sub.next()
            if self._client.is_answer_to(event, self.event):
                return self._client.open_response(event, self.method)


class WalletClient:
    """Requests to one wallet service over a :class:`RelayPool`."""

    def __init__(self, wallet_pubkey: str, secret: bytes, pool: RelayPool) -> None:
        self.wallet = wallet_pubkey
        self.pubkey = pubkey_of(secret)
        self._secret = secret
        self._conversation = nip44.conversation_key(secret, wallet_pubkey)
        self.pool = pool

    def __repr__(self) -> str:
        return f"WalletClient(wallet={self.wallet}, relays={self.pool.labels})"

    async def info(self) -> WalletInfo:
        """The newest info event any relay holds; :class:`NoInfo` when none has one."""
        async with self.pool.subscription(
            [{"kinds": [INFO_KIND], "authors": [self.wallet], "limit": 1}]
        ) as sub:
            await sub.ready()
            events = sub.stored()
        if not events:
            raise NoInfo("no relay holds the wallet service's info event (kind 13194)")
        return WalletInfo.of(max(events, key=lambda e: e.created_at))

    @contextlib.asynccontextmanager
    async def call(self, method: str, params: Mapping[str, Any], *, expires_in: int) -> AsyncIterator[Call]:
        """A request ready to :meth:`Call.send`, its answer subscription open (closed on exit)."""
        now = int(time.time())
        content = nip44.encrypt(json.dumps({"method": method, "params": dict(params)}), self._conversation)
        tags = [["p", self.wallet], ["encryption", NIP44_V2], ["expiration", str(now + expires_in)]]
        event = sign_event(self._secret, now, REQUEST_KIND, tags, content)
        answers = {"kinds": [RESPONSE_KIND], "authors": [self.wallet], "#p": [self.pubkey], "#e": [event.id]}
        async with self.pool.subscription([answers]) as sub:
            yield Call(self, method, event, sub)

    async def request(self, method: str, params: Mapping[str, Any], *, expires_in: int) -> dict[str, Any]:
        async with self.call(method, params, expires_in=expires_in) as call:
            await call.send()
            return await call.answer()

    def is_answer_to(self, event: Event, request: Event) -> bool:
        """The relay layer checked signature and filter; this restates what an answer must be."""
        return (
            event.kind == RESPONSE_KIND
            and event.pubkey == self.wallet
            and any(t[0] == "p" and len(t) > 1 and t[1] == self.pubkey for t in event.tags)
            and any(t[0] == "e" and len(t) > 1 and t[1] == request.id for t in event.tags)
        )

    def _decrypt(self, event: Event) -> dict[str, Any]:
        try:
            body = json.loads(nip44.decrypt(event.content, self._conversation))
        except nip44.Nip44Error as exc:
            raise BadAnswer(f"cannot decrypt the wallet's event ({exc})") from None
        except ValueError:
            raise BadAnswer("the wallet's event is not JSON") from None
        if not isinstance(body, dict):
            raise BadAnswer("the wallet's event is not a JSON object")
        return body

    def open_response(self, event: Event, method: str) -> dict[str, Any]:
        body = self._decrypt(event)
        if body.get("result_type") != method:
            raise BadAnswer(f"the wallet answered {str(body.get('result_type'))[:40]!r} to {method!r}")
        error = body.get("error")
        if error is not None:
            if not isinstance(error, dict) or not isinstance(error.get("code"), str):
                raise BadAnswer("the wallet's error has no code")
            message = error.get("message")
            raise WalletError(_clip(error["code"]), _clip(message) if isinstance(message, str) else "")
        result = body.get("result")
        if not isinstance(result, dict):
            raise BadAnswer("the wallet's answer has neither a result nor an error")
        return result

    @contextlib.asynccontextmanager
    async def notifications(self, *, ready_within: float) -> AsyncIterator[Notifications]:
        """Notifications (kind 23197) sent to us from now on, as long as a relay is connected.

        Entering waits (at most ``ready_within`` seconds) until every relay acknowledged the
        subscription, so anything the wallet sends afterwards reaches us."""
        flt = {
            "kinds": [NOTIFICATION_KIND],
            "authors": [self.wallet],
            "#p": [self.pubkey],
            "since": int(time.time()) - NOTIFICATION_SKEW,
        }
        async with self.pool.subscription([flt]) as sub:
            async with asyncio.timeout(ready_within):
                await sub.ready()
            yield Notifications(self, sub)


class Notifications:
    """The stream of one :meth:`WalletClient.notifications` subscription."""

    def __init__(self, client: WalletClient, sub: Subscription) -> None:
        self._client = client
        self._sub = sub

    async def next(self) -> tuple[str, dict[str, Any]]:
        """(type, notification); raises :class:`RelayUnavailable` once no relay is left."""
        while True:
            event = await self._sub.next()
            try:
                body = self._client._decrypt(event)
            except BadAnswer:
                continue  # signed by the wallet but unreadable: nothing to act on
            kind, notification = body.get("notification_type"), body.get("notification")
            if isinstance(kind, str) and isinstance(notification, dict):
                return kind, notification
