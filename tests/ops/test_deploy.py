"""The deployment files in deploy/: the Dockerfile read as text (building it takes a Docker engine
and minutes: deploy/test-image.sh), the systemd unit through ``systemd-analyze verify``, and the
nginx and Caddy examples run for real in front of a stand-in gateway when those are installed.

The stand-in is uvicorn with the settings ``boltgate serve`` gives it (proxy headers believed from
127.0.0.1 only), answering with what it was told: the client's address and scheme as the gateway
would see them, the headers, and an event stream that pauses between events.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from boltgate.config import Settings
from tests.conftest import ROOT, free_port

DEPLOY = ROOT / "deploy"


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (last matching rule wins)."""
    ignored = False
    for rule in (ROOT / ".dockerignore").read_text().splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/").removeprefix("**/")
        parts = Path(path).parts
        if any(fnmatch.fnmatch("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1)) or any(
            fnmatch.fnmatch(part, pattern) for part in parts if rule.lstrip("!").startswith("**/")
        ):
            ignored = not negate
    return ignored


def test_dockerfile_runs_unprivileged_with_a_healthcheck_and_copies_what_exists():
    instructions = dockerfile_instructions()
    kinds = [kind for kind, _ in instructions]
    assert kinds.count("FROM") == 2  # build stage, runtime stage
    assert instructions[0] == ("ARG", "BASE=python:3.11-slim-bookworm")

    runtime = instructions[[i for i, kind in enumerate(kinds) if kind == "FROM"][-1] :]
    user = [value for kind, value in runtime if kind == "USER"]
    uid = dict(value.split("=", 1) for kind, value in runtime if kind == "ARG" and "=" in value)["UID"]
    assert user == ["${UID}:${UID}"] and int(uid) >= 1000

    healthcheck = next(value for kind, value in runtime if kind == "HEALTHCHECK")
    assert "/healthz" in healthcheck and "curl" not in healthcheck
    assert "VOLUME" in kinds and "EXPOSE" in kinds
    env = next(value for kind, value in runtime if kind == "ENV")
    assert "BOLTGATE_DATA_DIR=/var/lib/boltgate" in env and "BOLTGATE_MODE=production" in env
    assert '"/var/lib/boltgate"' in next(value for kind, value in runtime if kind == "VOLUME")
    assert next(value for kind, value in runtime if kind == "EXPOSE") == str(Settings().port)

    copied = [
        value.split()[:-1]
        for kind, value in instructions
        if kind == "COPY" and not value.startswith("--from")
    ]
    sources = [source for group in copied for source in group]
    assert "requirements.lock" in sources and "boltgate" in sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not dockerignored(source), f".dockerignore keeps {source} out of the build"
    for kept_out in (".venv/bin/python", ".git/HEAD", "bench/.peers/x", ".env", "boltgate/__pycache__/x.pyc"):
        assert dockerignored(kept_out), kept_out

    entrypoint = (DEPLOY / "docker-entrypoint.sh").read_text()
    assert os.access(DEPLOY / "docker-entrypoint.sh", os.X_OK)
    assert entrypoint.index("boltgate migrate") < entrypoint.index("exec boltgate serve")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_unit_verifies_and_is_hardened(tmp_path):
    unit = (DEPLOY / "boltgate.service").read_text()
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#")
    )
    assert settings["User"] == "boltgate" and settings["EnvironmentFile"] == "/etc/boltgate/boltgate.env"
    assert settings["ExecStartPre"].endswith("boltgate migrate")
    assert settings["ProtectSystem"] == "strict" and settings["NoNewPrivileges"] == "yes"
    assert settings["ReadWritePaths"] == "/var/lib/boltgate" and settings["Restart"] == "on-failure"
    assert settings["RestrictAddressFamilies"] == "AF_INET AF_INET6 AF_UNIX"

    # verify wants the programs to exist: this checkout's boltgate stands in for /opt/boltgate's
    here = str(Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "boltgate")
    (tmp_path / "boltgate.service").write_text(unit.replace("/opt/boltgate/venv/bin/boltgate", here))
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "boltgate.service")], capture_output=True, text=True
    )
    assert verify.returncode == 0 and "boltgate.service" not in verify.stderr, verify.stderr
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(tmp_path / "boltgate.service")],
        capture_output=True,
        text=True,
    )
    exposure = re.search(r"Overall exposure level for boltgate.service: ([\d.]+)", security.stdout)
    assert exposure is not None and float(exposure.group(1)) <= 2.0, security.stdout[-500:]


async def stand_in(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A gateway stand-in: reports what it was told, or streams two events a second apart."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"].endswith("/events"):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send({"type": "http.response.body", "body": b"data: first\n\n", "more_body": True})
        await asyncio.sleep(1.5)
        await send({"type": "http.response.body", "body": b"data: second\n\n"})
        return
    seen = {
        "client": scope["client"][0],
        "scheme": scope["scheme"],
        "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
        "bodyBytes": len(body),
    }
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": orjson.dumps(seen)})


@pytest.fixture
async def upstream() -> AsyncIterator[int]:
    port = free_port()
    # as `boltgate serve`: uvicorn's defaults for proxy headers (FORWARDED_ALLOW_IPS or 127.0.0.1)
    server = uvicorn.Server(
        uvicorn.Config(stand_in, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield port
    server.should_exit = True
    await task


async def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text() if log.exists() else "exited"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}: {log.read_text() if log.exists() else ''}")


async def check_front(base: str, refused: set[int]) -> None:
    """What a front proxy must do for the gateway, checked through it."""
    headers = {"Host": "pay.example.com"}
    async with httpx.AsyncClient(base_url=base, verify=False, timeout=10, headers=headers) as http:
        seen = (await http.get("/api/payments", headers={"X-Forwarded-For": "6.6.6.6"})).json()
        assert seen["client"] == "127.0.0.1"  # the real client: what it claimed is not believed
        assert seen["scheme"] == "https"
        assert seen["headers"]["host"].startswith("pay.example.com")

        small = await http.post("/api/payments", content=b"x" * 60_000)
        assert small.json()["bodyBytes"] == 60_000
        assert (await http.post("/api/payments", content=b"x" * 70_000)).status_code in refused
        big = await http.post("/l402/proxy/prx_1/upload", content=b"x" * 2_000_000)
        assert big.json()["bodyBytes"] == 2_000_000

        started = time.monotonic()
        async with http.stream("GET", "/checkout/inv_1/events") as events:
            chunks = events.aiter_text()
            assert "first" in await anext(chunks)
            assert time.monotonic() - started < 1.2  # not held back until the stream ends
            assert "second" in await anext(chunks)


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
async def test_nginx_example_in_front_of_the_gateway(tmp_path, upstream):
    port = free_port()
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=pay.example.com",
            "-keyout",
            str(tmp_path / "key.pem"),
            "-out",
            str(tmp_path / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )
    site = (DEPLOY / "nginx.conf").read_text()
    site = site.replace("/etc/letsencrypt/live/pay.example.com/fullchain.pem", str(tmp_path / "cert.pem"))
    site = site.replace("/etc/letsencrypt/live/pay.example.com/privkey.pem", str(tmp_path / "key.pem"))
    site = site.replace("server 127.0.0.1:8402;", f"server 127.0.0.1:{upstream};")
    site = site.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{port} ssl http2;")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{free_port()};")
    site = re.sub(r"\n\s*listen \[::\]:\d+[^;]*;", "", site)
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")  # its workers write request bodies to tmp_path
        + f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\nhttp {{\n"
        f"  access_log off;\n  client_body_temp_path {tmp_path}/body;\n  proxy_temp_path {tmp_path}/proxy;\n"
        f"  include {tmp_path}/site.conf;\n}}\n"
    )
    checked = subprocess.run(
        ["nginx", "-t", "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    nginx = subprocess.Popen(["nginx", "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"])
    try:
        await wait_for_port(port, nginx, tmp_path / "error.log")
        await check_front(f"https://127.0.0.1:{port}", refused={413})
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)


@pytest.mark.skipif(shutil.which("caddy") is None, reason="caddy is not installed")
async def test_caddy_example_in_front_of_the_gateway(tmp_path, upstream):
    port = free_port()
    site = (DEPLOY / "Caddyfile").read_text().replace("127.0.0.1:8402", f"127.0.0.1:{upstream}")
    site = site.replace("pay.example.com {", f"pay.example.com:{port} {{\n\tbind 127.0.0.1\n\ttls internal")
    options = (
        f"{{\n\tadmin off\n\tskip_install_trust\n\tdefault_sni pay.example.com\n"
        f"\thttp_port {free_port()}\n\thttps_port {port}\n}}\n\n"
    )
    (tmp_path / "Caddyfile").write_text(options + site)
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    log = tmp_path / "caddy.log"
    with log.open("wb") as out:
        caddy = subprocess.Popen(
            ["caddy", "run", "--adapter", "caddyfile", "--config", str(tmp_path / "Caddyfile")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        await wait_for_port(port, caddy, log)
        # Caddy issues the site's certificate from its own CA (tls internal) once it runs
        async with httpx.AsyncClient(verify=False) as probe:
            for _ in range(50):
                try:
                    await probe.get(f"https://127.0.0.1:{port}/healthz", headers={"Host": "pay.example.com"})
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        # Caddy 2.6 (Debian 12) answers a body over its limit with 502, 2.7 and later with 413
        await check_front(f"https://127.0.0.1:{port}", refused={413, 502})
    finally:
        caddy.terminate()
        caddy.wait(timeout=10)
