"""The relay publisher against a real Nostr relay process on loopback, plus tiny in-process fakes for the
failure modes a real relay will not produce on demand (silence, hanging up, chatter before the OK).

The real relay is nostr-relay 1.14 from PyPI. Its dependencies (SQLAlchemy, pydantic, uvicorn, falcon...)
are pinned in ``tests/agent/relay-requirements.lock`` and installed by ``scripts/relay-venv.sh`` into
``.venv-relay``, apart from the gateway's own ``.venv``. The fixture runs that script every session: it
returns at once when the venv is up to date, and a fresh build takes about 25-45 s (2 cores, download
included). Starting the relay (SQLite migrations, then uvicorn) takes about 2-3 s more.

Several tests pin down what this relay does where relays differ (NIP-09 deletion, addressable events,
duplicates, size and age limits), because the gateway has to live with those behaviours.
Events are signed by a local helper: the gateway's own Nostr module is written separately, and an
independent signer here also keeps the two honest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import coincurve
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.sync.client import connect as sync_connect

from boltgate.agent.relays import PublishResult, RelayError, fetch, publish
from tests.conftest import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RELAY_VENV = ROOT / ".venv-relay"
RELAY_START_SECONDS = 60.0


# --- signing (NIP-01) -------------------------------------------------------------------------------


def xonly(key: coincurve.PrivateKey) -> str:
    return bytes(key.public_key.format(compressed=True)[1:]).hex()


def sign(
    key: coincurve.PrivateKey,
    kind: int,
    tags: list[list[str]],
    content: str,
    created_at: int | None = None,
) -> dict[str, Any]:
    """A NIP-01 event: id = sha256 of the compact serialization, BIP-340 signature over the id."""
    pubkey = xonly(key)
    created = int(time.time()) if created_at is None else created_at
    serial = json.dumps([0, pubkey, created, kind, tags, content], separators=(",", ":"), ensure_ascii=False)
    event_id = hashlib.sha256(serial.encode()).hexdigest()
    sig = bytes(key.sign_schnorr(bytes.fromhex(event_id), os.urandom(32))).hex()
    return {
        "id": event_id,
        "pubkey": pubkey,
        "created_at": created,
        "kind": kind,
        "tags": tags,
        "content": content,
        "sig": sig,
    }


# --- the real relay ---------------------------------------------------------------------------------


def _log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-4000:] if path.exists() else "(no log)"


def _wait_serving(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until the websocket accepts a connection: the port alone opens before the app is set up."""
    deadline = time.monotonic() + RELAY_START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"nostr-relay exited with {proc.returncode}:\n{_log_tail(log)}")
        try:
            with sync_connect(url, open_timeout=1, proxy=None):
                return
        except Exception:  # refused, reset, or handshake before the app is ready
            time.sleep(0.2)
    pytest.fail(f"nostr-relay did not serve {url} within {RELAY_START_SECONDS:g}s:\n{_log_tail(log)}")


@pytest.fixture(scope="session")
def relay_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A nostr-relay process on a free loopback port with a throwaway SQLite database."""
    build = subprocess.run(
        ["bash", str(ROOT / "scripts" / "relay-venv.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if build.returncode != 0:
        pytest.fail(f"scripts/relay-venv.sh failed ({build.returncode}):\n{build.stderr[-4000:]}")
    workdir = tmp_path_factory.mktemp("nostr-relay")
    port = free_port()
    # JSON is valid YAML, and the gateway's venv has no YAML writer.
    config = {
        "DEBUG": False,
        "relay_name": "boltgate test relay",
        "storage": {
            "sqlalchemy.url": f"sqlite+aiosqlite:///{workdir / 'relay.sqlite3'}",
            "validators": [
                "nostr_relay.validators.is_not_too_large",
                "nostr_relay.validators.is_signed",
                "nostr_relay.validators.is_recent",
            ],
        },
        "gunicorn": {"bind": f"127.0.0.1:{port}", "workers": 1, "loglevel": "warning"},
        "authentication": {"enabled": False},
    }
    config_file = workdir / "config.yaml"
    config_file.write_text(json.dumps(config, indent=2))
    log = workdir / "relay.log"
    url = f"ws://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(RELAY_VENV / "bin" / "nostr-relay"), "-c", str(config_file), "serve", "--use-uvicorn"],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_serving(url, proc, log)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def key() -> coincurve.PrivateKey:
    return coincurve.PrivateKey()


# --- in-process fakes -------------------------------------------------------------------------------

Handler = Callable[[ServerConnection], Awaitable[None]]


@contextlib.asynccontextmanager
async def fake_relay(handler: Handler) -> AsyncIterator[str]:
    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


async def _silent(ws: ServerConnection) -> None:
    async for _ in ws:  # reads everything, answers nothing
        pass


# --- the real relay: happy path and its semantics ---------------------------------------------------


async def test_event_is_accepted_and_fetched_back_unchanged(
    relay_url: str, key: coincurve.PrivateKey
) -> None:
    # Content that stresses the id serialization: non-ASCII, escapes, U+2028, a control character.
    event = sign(key, 38401, [["t", "boltgate"], ["p", xonly(key), ""]], 'pay é ⚡ "q" \\ \n\t\u2028\x01 /')
    assert await publish([relay_url], event) == [PublishResult(relay_url, True, "")]
    assert await fetch(relay_url, {"ids": [event["id"]]}) == [event]


async def test_republishing_is_reported_as_duplicate_not_accepted(
    relay_url: str, key: coincurve.PrivateKey
) -> None:
    # NIP-01 suggests OK true with a "duplicate:" message; nostr-relay says false. The event is held.
    event = sign(key, 38403, [], "review")
    assert (await publish([relay_url], event))[0].accepted
    again = await publish([relay_url], event)
    assert again == [PublishResult(relay_url, False, "duplicate: exists")]
    assert await fetch(relay_url, {"ids": [event["id"]]}) == [event]


async def test_deletion_by_e_tag_removes_the_event(relay_url: str, key: coincurve.PrivateKey) -> None:
    event = sign(key, 38401, [], "to be withdrawn")
    assert (await publish([relay_url], event))[0].accepted
    deletion = sign(key, 5, [["e", event["id"]]], "withdrawn")
    assert await publish([relay_url], deletion) == [PublishResult(relay_url, True, "")]
    assert await fetch(relay_url, {"ids": [event["id"]]}) == []
    assert await fetch(relay_url, {"ids": [deletion["id"]]}) == [deletion]
    # The relay does not remember deletions: the same event, sent again, is stored again (NIP-09 says
    # relays SHOULD refuse it). The gateway must not re-send what it deleted.
    assert (await publish([relay_url], event))[0].accepted
    assert await fetch(relay_url, {"ids": [event["id"]]}) == [event]


async def test_deletion_limits_foreign_author_and_a_tags(relay_url: str, key: coincurve.PrivateKey) -> None:
    pk = xonly(key)
    event = sign(key, 38401, [], "mine")
    advert = sign(key, 38400, [["d", "a-tag-target"]], "{}")
    for ev in (event, advert):
        assert (await publish([relay_url], ev))[0].accepted
    # Someone else's deletion is accepted as an event, but deletes nothing.
    stranger = sign(coincurve.PrivateKey(), 5, [["e", event["id"]]], "")
    assert (await publish([relay_url], stranger))[0].accepted
    assert await fetch(relay_url, {"ids": [event["id"]]}) == [event]
    # Deleting an addressable event by its "a" coordinate is accepted but ignored by nostr-relay 1.14:
    # to withdraw a capability advert the gateway must name the event id in an "e" tag.
    by_address = sign(key, 5, [["a", f"38400:{pk}:a-tag-target"]], "")
    assert (await publish([relay_url], by_address))[0].accepted
    assert await fetch(relay_url, {"ids": [advert["id"]]}) == [advert]


async def test_addressable_event_is_replaced_by_a_newer_one(
    relay_url: str, key: coincurve.PrivateKey
) -> None:
    pk = xonly(key)
    now = int(time.time())
    query = {"kinds": [38400], "authors": [pk], "#d": ["invoice-api"]}
    first = sign(key, 38400, [["d", "invoice-api"]], '{"v":1}', now - 30)
    second = sign(key, 38400, [["d", "invoice-api"]], '{"v":2}', now - 20)
    other_d = sign(key, 38400, [["d", "other-api"]], '{"v":1}', now - 25)
    for ev in (first, other_d, second):
        assert (await publish([relay_url], ev))[0].accepted
    assert await fetch(relay_url, query) == [second]
    assert await fetch(relay_url, {"ids": [other_d["id"]]}) == [other_d]  # another d is another address


async def test_addressable_replacement_quirks(relay_url: str, key: coincurve.PrivateKey) -> None:
    """nostr-relay only replaces when the incoming version is strictly newer; it never refuses a stale one.

    So a late, older version and a same-second version are both stored next to the current one. The
    gateway must give each new version a strictly greater created_at and never publish old versions.
    """
    pk = xonly(key)
    now = int(time.time())
    query = {"kinds": [38400], "authors": [pk], "#d": ["quirks"]}
    current = sign(key, 38400, [["d", "quirks"]], "current", now - 20)
    stale = sign(key, 38400, [["d", "quirks"]], "stale", now - 40)
    assert (await publish([relay_url], current))[0].accepted
    assert (await publish([relay_url], stale))[0].accepted  # NIP-01: should be refused or dropped
    assert sorted(ev["content"] for ev in await fetch(relay_url, query)) == ["current", "stale"]


# --- the real relay: rejections ---------------------------------------------------------------------


async def test_wrong_id_is_refused_with_the_relays_message(relay_url: str, key: coincurve.PrivateKey) -> None:
    event = sign(key, 38401, [], "original")
    tampered = {**event, "content": "changed after signing"}  # id and sig no longer match the content
    [result] = await publish([relay_url], tampered)
    # nostr-relay answers ["OK", "", false, ...] (empty id) after a 2 s throttle: both must be handled.
    assert result == PublishResult(relay_url, False, "invalid: Bad signature")
    assert await fetch(relay_url, {"ids": [event["id"]]}) == []


async def test_relay_does_not_check_the_claimed_id(relay_url: str, key: coincurve.PrivateKey) -> None:
    """nostr-relay verifies the signature against the id it recomputes, never the id it was sent.

    An event whose signature is fine but whose "id" field is made up is stored under the made-up id, so
    the gateway must compute ids itself and never trust a relay's acceptance as proof of a valid id.
    """
    event = {**sign(key, 38401, [], "bogus id"), "id": os.urandom(32).hex()}
    assert await publish([relay_url], event) == [PublishResult(relay_url, True, "")]
    assert await fetch(relay_url, {"ids": [event["id"]]}) == [event]


async def test_size_and_age_limits(relay_url: str, key: coincurve.PrivateKey) -> None:
    """Default limits: content up to 4096 characters (tags are not counted); created_at within the last
    year and at most an hour ahead. Each refusal costs the connection a 2 s throttle."""
    assert (await publish([relay_url], sign(key, 38400, [["d", "big"]], "x" * 4096)))[0].accepted
    [too_big] = await publish([relay_url], sign(key, 38400, [["d", "bigger"]], "x" * 4097))
    [too_old] = await publish([relay_url], sign(key, 38401, [], "old", int(time.time()) - 400 * 86400))
    assert too_big == PublishResult(relay_url, False, "invalid: 280 characters should be enough for anybody")
    assert not too_old.accepted and too_old.message.endswith("is too old")


# --- transport failures -----------------------------------------------------------------------------


async def test_closed_port_fails_fast_while_a_working_relay_accepts(
    relay_url: str, key: coincurve.PrivateKey
) -> None:
    dead = f"ws://127.0.0.1:{free_port()}"
    event = sign(key, 38401, [], "parallel")
    started = time.monotonic()
    results = await publish([dead, relay_url], event)
    assert time.monotonic() - started < 2
    assert [r.relay for r in results] == [dead, relay_url]  # one result per relay, in order
    assert results[0].accepted is False and results[0].message.startswith("connection failed")
    assert results[1] == PublishResult(relay_url, True, "")


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/", "https://relay.invalid", "127.0.0.1:1", ""])
async def test_non_websocket_urls_are_unsupported(url: str, key: coincurve.PrivateKey) -> None:
    assert await publish([url], sign(key, 1, [], "x")) == [PublishResult(url, False, "unsupported scheme")]
    with pytest.raises(RelayError, match="unsupported scheme"):
        await fetch(url, {"ids": ["00" * 32]})


async def test_silent_relay_times_out(key: coincurve.PrivateKey) -> None:
    async with fake_relay(_silent) as url:
        started = time.monotonic()
        [result] = await publish([url], sign(key, 1, [], "x"), timeout=0.5)
        elapsed = time.monotonic() - started
    assert result == PublishResult(url, False, "timed out after 0.5s")
    assert 0.5 <= elapsed < 1.5


async def test_relay_that_hangs_up_is_reported(key: coincurve.PrivateKey) -> None:
    async def hang_up(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.close(code=1011)

    async with fake_relay(hang_up) as url:
        [result] = await publish([url], sign(key, 1, [], "x"), timeout=2)
    assert result == PublishResult(url, False, "connection closed by relay (code 1011)")


async def test_chatter_and_other_ids_are_skipped_until_our_ok(key: coincurve.PrivateKey) -> None:
    seen: list[Any] = []

    async def chatty(ws: ServerConnection) -> None:
        message = json.loads(await ws.recv())
        seen.append(message)
        event_id = message[1]["id"]
        for frame in (
            ["NOTICE", "hello"],
            "not json",
            ["OK", "ff" * 32, False, "someone else's event"],
            ["OK", event_id, "yes", "malformed flag"],
            ["OK", event_id, True, "stored: " + "z" * 500],
        ):
            await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
        await ws.wait_closed()

    event = sign(key, 38401, [], "x")
    async with fake_relay(chatty) as url:
        [result] = await publish([url], event, timeout=2)
    assert seen == [["EVENT", event]]
    assert result.accepted is True
    assert result.message.startswith("stored: zzz") and len(result.message) <= 200


async def test_fetch_failures_raise_relay_error() -> None:
    with pytest.raises(RelayError, match="connection failed"):
        await fetch(f"ws://127.0.0.1:{free_port()}", {"limit": 1}, timeout=1)
    async with fake_relay(_silent) as url:
        with pytest.raises(RelayError, match=r"timed out after 0\.5s"):
            await fetch(url, {"limit": 1}, timeout=0.5)


async def test_fetch_reports_a_closed_subscription() -> None:
    async def refuse(ws: ServerConnection) -> None:
        sub_id = json.loads(await ws.recv())[1]
        await ws.send(json.dumps(["CLOSED", sub_id, "auth-required: sign in"]))
        await ws.wait_closed()

    async with fake_relay(refuse) as url:
        with pytest.raises(RelayError, match="relay closed the query: auth-required: sign in"):
            await fetch(url, {"limit": 1}, timeout=2)


async def test_many_relays_run_in_parallel(key: coincurve.PrivateKey) -> None:
    async with fake_relay(_silent) as url:
        started = time.monotonic()
        results = await publish([url] * 5, sign(key, 1, [], "x"), timeout=0.5)
        elapsed = time.monotonic() - started
    assert [r.message for r in results] == ["timed out after 0.5s"] * 5
    assert elapsed < 1.5  # five timeouts at once, not one after another


def test_results_are_immutable() -> None:
    result = PublishResult("ws://127.0.0.1:1", True, "")
    with pytest.raises(AttributeError):
        result.accepted = False  # type: ignore[misc]


async def test_handshake_refusal_and_unserialisable_events(relay_url: str) -> None:
    [refused] = await publish([relay_url + "/no-such-path"], {"id": "ab" * 32})
    assert refused == PublishResult(relay_url + "/no-such-path", False, "handshake refused: HTTP 403")
    assert await publish([relay_url], {"id": "ab" * 32, "content": object()}) == [
        PublishResult(relay_url, False, "event is not JSON")
    ]
    assert await publish([relay_url], {"content": "no id"}) == [
        PublishResult(relay_url, False, "event has no id")
    ]
    assert await publish([], {"id": "ab" * 32}) == []
    huge = {"id": "ab" * 32, "content": "x" * (1024 * 1024)}
    assert await publish([relay_url], huge) == [PublishResult(relay_url, False, "event too large")]


async def test_oversized_relay_message_is_refused(key: coincurve.PrivateKey) -> None:
    async def flood(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(json.dumps(["NOTICE", "x" * (1024 * 1024)]))
        await ws.wait_closed()

    async with fake_relay(flood) as url:
        [result] = await publish([url], sign(key, 1, [], "x"), timeout=2)
        with pytest.raises(RelayError, match="over 1 MiB"):
            await fetch(url, {"limit": 1}, timeout=2)
    assert result == PublishResult(url, False, "relay sent a message over 1 MiB")
