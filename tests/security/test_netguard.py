"""The outbound address rule (``boltgate.kit.netguard``) on its own: which addresses count as
public, what an allow-list adds, and that both guarded clients refuse a name that resolves to a
private address when they connect, not only when a URL is saved (DNS rebinding)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest

from boltgate.kit import netguard

NOT_PUBLIC = [
    "127.0.0.1",  # loopback
    "127.1.2.3",
    "10.0.0.8",  # RFC 1918
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",  # link-local: cloud metadata
    "100.64.0.1",  # carrier-grade NAT
    "100.100.100.200",  # a metadata service inside 100.64/10
    "0.0.0.0",
    "255.255.255.255",
    "224.0.0.1",  # multicast
    "198.18.0.1",  # benchmarking
    "192.0.0.170",
    "::1",
    "::",
    "fe80::1",  # link-local
    "fe80::1%eth0",  # with a zone
    "fc00::1",  # unique local
    "fd00:ec2::254",  # a metadata service over IPv6
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "ff02::1",
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2002:a00:1::",  # 6to4 of 10.0.0.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
]
PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
    "2002:808:808::1",  # 6to4 of 8.8.8.8
]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_private_loopback_link_local_and_metadata_addresses_are_not_public(address):
    assert not netguard.is_public(address)
    assert not netguard.allowed(address, ())


@pytest.mark.parametrize("address", PUBLIC)
def test_global_unicast_addresses_are_public(address):
    assert netguard.is_public(address) and netguard.allowed(address, ())


def test_an_allow_list_opens_only_its_networks():
    networks = netguard.parse_networks(["127.0.0.1", "10.0.0.0/8", " "])
    assert netguard.allowed("127.0.0.1", networks) and netguard.allowed("10.200.0.1", networks)
    assert netguard.allowed("::ffff:10.1.1.1", networks)  # the mapped form is the same address
    assert not netguard.allowed("127.0.0.2", networks)
    assert not netguard.allowed("169.254.169.254", networks)
    assert not netguard.allowed("::1", networks)  # an IPv4 network never admits IPv6
    with pytest.raises(ValueError, match=r"10\.0\.0\.0/33"):
        netguard.parse_networks(["10.0.0.0/33"])


def test_ip_literals_are_checked_before_connecting():
    for host in ("127.0.0.1", "[::1]", "169.254.169.254"):
        with pytest.raises(netguard.AddressRefused):
            netguard.check_literal(host, ())
    netguard.check_literal("127.0.0.1", netguard.parse_networks(["127.0.0.1"]))
    netguard.check_literal("example.com", ())  # names are for the resolver to check


@pytest.fixture
async def local_server() -> AsyncIterator[int]:
    """A plain HTTP server on loopback that answers every request with a redirect to itself."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1/inside\r\nContent-Length: 2\r\n"
            b"Connection: close\r\n\r\nok"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_the_webhook_client_refuses_a_name_that_resolves_to_loopback(local_server):
    # "localhost" passes any check of the URL's text; the address it resolves to does not
    async with netguard.webhook_client(allow_private=False, timeout=5, connections=2) as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.get(f"http://localhost:{local_server}/hook")
        assert isinstance(caught.value.__cause__, netguard.AddressNotAllowed)
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{local_server}/hook")
    async with netguard.webhook_client(allow_private=True, timeout=5, connections=2) as client:
        answer = await client.get(f"http://localhost:{local_server}/hook")
    assert answer.status_code == 302  # reached, and the redirect is returned, never followed


async def test_the_proxy_session_refuses_a_name_that_resolves_to_loopback(local_server):
    session = netguard.guarded_session((), connect=5, read=5, connections=2)
    try:
        with pytest.raises(aiohttp.ClientError) as caught:
            await session.get(f"http://localhost:{local_server}/x", allow_redirects=False)
        assert isinstance(caught.value.__cause__, netguard.AddressRefused)
    finally:
        await session.close()
    allowed = netguard.guarded_session(
        netguard.parse_networks(["127.0.0.1", "::1"]), connect=5, read=5, connections=2
    )
    try:
        async with allowed.get(f"http://localhost:{local_server}/x", allow_redirects=False) as answer:
            assert answer.status == 302
    finally:
        await allowed.close()
