"""The relay client: filters, verification of what relays send, several relays, refusals,
relays that close a subscription or send garbage, and the outbound-address hook."""

from __future__ import annotations

import asyncio
import json
import secrets
import time

import pytest
from websockets.asyncio.server import serve

from boltgate.agent.nostr import Event, pubkey_of, sign_event
from boltgate.nostr.relay import (
    EventRejected,
    RelayPool,
    RelayUnavailable,
    check_relay_url,
    matches,
    relay_label,
)
from tests.lightning.fakes.relay import FakeRelay

KEY = secrets.token_bytes(32)


def note(
    kind: int = 1, tags: list[list[str]] | None = None, created_at: int | None = None, key: bytes = KEY
) -> Event:
    return sign_event(key, created_at or int(time.time()), kind, tags or [], "hello")


def test_filters_follow_nip01():
    event = note(23195, [["p", "aa" * 32], ["e", "bb" * 32], ["e", "cc" * 32]], created_at=1000)
    assert matches({"kinds": [23195], "authors": [pubkey_of(KEY)], "#e": ["cc" * 32]}, event)
    assert matches({"ids": [event.id], "since": 1000, "until": 1000, "limit": 1}, event)
    assert not matches({"kinds": [23194]}, event)
    assert not matches({"authors": ["dd" * 32]}, event)
    assert not matches({"#p": ["bb" * 32]}, event)
    assert not matches({"#x": ["aa" * 32]}, event)
    assert not matches({"since": 1001}, event)
    assert not matches({"until": 999}, event)


@pytest.mark.parametrize(
    "url",
    [
        "https://relay.example.com",
        "wss://",
        "wss://u:p@relay.example.com",
        "wss://r.example#x",
        "ws://h:99999",
    ],
)
def test_unusable_relay_urls_are_refused(url):
    with pytest.raises(ValueError, match="relay URL"):
        check_relay_url(url)


def test_labels_keep_only_scheme_host_and_port():
    assert relay_label("wss://relay.example.com/path?token=s3cret") == "wss://relay.example.com"
    assert relay_label("ws://127.0.0.1:7447/") == "ws://127.0.0.1:7447"
    assert relay_label("wss://[::1]:443") == "wss://[::1]:443"


async def test_an_event_from_two_relays_arrives_once():
    relays = [FakeRelay(), FakeRelay()]
    for relay in relays:
        await relay.start()
    pool = RelayPool([r.url for r in relays])
    try:
        event = note(20001)  # ephemeral: forwarded, not stored
        async with pool.subscription([{"kinds": [20001]}]) as sub:
            await sub.ready()
            assert await sub.publish(event) == 2
            assert (await asyncio.wait_for(sub.next(), 2)).id == event.id
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(sub.next(), 0.3)
    finally:
        await pool.close()
        for relay in relays:
            await relay.stop()


async def test_an_event_every_relay_refuses_is_rejected():
    relay = FakeRelay()
    await relay.start()
    pool = RelayPool([relay.url])
    try:
        expired = note(20001, [["expiration", str(int(time.time()) - 10)]])
        async with pool.subscription([{"kinds": [20001]}]) as sub:
            await sub.ready()
            await sub.publish(expired)
            with pytest.raises(EventRejected, match="expired"):
                await asyncio.wait_for(sub.next(), 2)
    finally:
        await pool.close()
        await relay.stop()


async def test_what_a_bad_relay_sends_is_dropped_and_its_closing_ends_the_subscription():
    genuine = note(1)
    forged = Event(genuine.id, genuine.pubkey, genuine.created_at, 1, (), "changed", genuine.sig)
    unrequested = note(7)

    async def bad_relay(connection):
        async for raw in connection:
            request = json.loads(raw)
            if request[0] != "REQ":
                continue
            sub = request[1]
            await connection.send("not json")
            await connection.send(json.dumps(["NOTICE", "x" * 5000]))
            await connection.send(json.dumps(["EVENT", sub, forged.to_json()]))
            await connection.send(json.dumps(["EVENT", sub, unrequested.to_json()]))
            await connection.send(json.dumps(["EVENT", sub, genuine.to_json()]))
            await connection.send(json.dumps(["EOSE", sub]))
            await connection.send(json.dumps(["CLOSED", sub, "error: shutting down"]))

    async with serve(bad_relay, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        pool = RelayPool([f"ws://127.0.0.1:{port}"])
        try:
            async with pool.subscription([{"kinds": [1]}]) as sub:
                await sub.ready()
                assert [e.id for e in sub.stored()] == [genuine.id]
                with pytest.raises(RelayUnavailable, match="shutting down"):
                    await asyncio.wait_for(sub.next(), 2)
        finally:
            await pool.close()


async def test_the_address_rule_is_applied_before_connecting():
    relay = FakeRelay()
    await relay.start()
    seen: list[str] = []

    def rule(address: str) -> bool:
        seen.append(address)
        return False

    pool = RelayPool([relay.url], address_rule=rule)
    try:
        with pytest.raises(RelayUnavailable, match="not allowed"):
            async with pool.subscription([{"kinds": [1]}]):
                pass
        assert seen == ["127.0.0.1"] and relay.messages == []
    finally:
        await pool.close()
        await relay.stop()


async def test_a_relay_that_failed_is_skipped_while_another_works():
    up, down = FakeRelay(), FakeRelay()
    await up.start()
    pool = RelayPool([down.url, up.url])
    try:
        async with pool.subscription([{"kinds": [1]}]) as sub:
            assert sub.relays == [relay_label(up.url)]
        await down.start()  # back, but still cooling down: not tried yet
        async with pool.subscription([{"kinds": [1]}]) as sub:
            assert sub.relays == [relay_label(up.url)]
        assert down.messages == []
    finally:
        await pool.close()
        await up.stop()
        await down.stop()


async def test_no_relay_at_all_says_why():
    pool = RelayPool([FakeRelay().url])
    try:
        with pytest.raises(RelayUnavailable, match="cannot be reached"):
            async with pool.subscription([{"kinds": [1]}]):
                pass
    finally:
        await pool.close()
