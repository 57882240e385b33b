"""The ``boltgate`` command line: serve, worker, migrate, backup, merchant …, refund …, secret-key …,
dev pay.

Every option also comes from ``BOLTGATE_*`` variables; flags given here win.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pydantic import ValidationError

from boltgate.config import ConfigError, Settings

if TYPE_CHECKING:
    from boltgate.db.engine import Database
    from boltgate.refund.operator import Desk

_HASH = re.compile(r"^[0-9a-fA-F]{64}$")
T = TypeVar("T")


def _settings() -> Settings:
    try:
        settings = Settings()
        settings.check_production()
    except ValidationError as exc:  # named by setting, without the values (they may be secrets)
        problems = "; ".join(
            f"BOLTGATE_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        print(f"boltgate: invalid settings: {problems}", file=sys.stderr)
        raise SystemExit(2) from None
    except ConfigError as exc:
        print(f"boltgate: invalid settings: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    return settings


def cmd_serve(args: argparse.Namespace) -> int:
    import structlog
    import uvicorn

    from boltgate.ops.logging import configure

    if args.host:
        os.environ["BOLTGATE_HOST"] = args.host
    if args.port:
        os.environ["BOLTGATE_PORT"] = str(args.port)
    settings = _settings()
    configure(settings.log_level, settings.log_json)
    if args.workers > 1 and settings.effective_database_url.startswith("sqlite"):
        structlog.get_logger("boltgate").warning(
            "sqlite_with_several_workers",
            hint="writes of the workers queue on one SQLite file; use PostgreSQL for several workers",
        )
    if settings.auto_migrate:
        from boltgate.db.migrate import upgrade

        asyncio.run(upgrade(settings.effective_database_url))
        os.environ["BOLTGATE_AUTO_MIGRATE"] = "false"  # done once here, not again in each worker
    uvicorn.run(
        "boltgate.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=args.workers,
        loop="uvloop",
        http="boltgate.ops.http_server:BoundedHttpToolsProtocol",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    return 0


def cmd_worker(_args: argparse.Namespace) -> int:
    from boltgate.app import open_context, start_workers
    from boltgate.ops.logging import configure

    settings = _settings()
    configure(settings.log_level, settings.log_json)

    async def run() -> None:
        async with open_context(settings) as ctx:
            await asyncio.gather(*start_workers(ctx))

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


def cmd_migrate(_args: argparse.Namespace) -> int:
    from boltgate.db.migrate import upgrade

    settings = _settings()
    asyncio.run(upgrade(settings.effective_database_url))
    print("database is up to date")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from boltgate.ops.backup import BackupError, backup

    settings = _settings()
    try:
        made = backup(settings.effective_database_url, args.path)
    except BackupError as exc:
        print(f"boltgate: backup failed: {exc}", file=sys.stderr)
        return 1
    print(f"{made.kind} backup: {made.path} ({made.size} bytes)")
    print("keep BOLTGATE_SECRET_KEY with it: without that key the sealed secrets in it cannot be opened")
    return 0


def _db_job(job: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``job`` against the configured database (migrated first); a domain error exits 2."""
    from boltgate.db.engine import Database
    from boltgate.db.migrate import upgrade
    from boltgate.errors import BoltgateError

    settings = _settings()

    async def run() -> T:
        if settings.auto_migrate:
            await upgrade(settings.effective_database_url)
        db = Database(settings.effective_database_url)
        try:
            return await job(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    except BoltgateError as exc:
        print(f"boltgate: {exc.detail}", file=sys.stderr)
        raise SystemExit(2) from exc


def cmd_merchant_create(args: argparse.Namespace) -> int:
    from boltgate.merchant import service

    async def job(db: Database) -> tuple[str, str, str]:
        async with db.writing() as session:
            merchant, issued = await service.create_merchant(session, args.name)
        return merchant.id, issued.key.id, issued.secret

    merchant_id, key_id, secret = _db_job(job)
    print(f"merchant: {merchant_id} ({args.name.strip()})")
    print(f"api key id: {key_id} (shown once; store the key now)")
    print(secret)
    return 0


def cmd_merchant_list(_args: argparse.Namespace) -> int:
    from boltgate.merchant import repository

    async def job(db: Database) -> list[tuple[str, str, bool]]:
        async with db.reading() as session:
            return [(m.id, m.name, m.is_active) for m in await repository.list_merchants(session)]

    for merchant_id, name, active in _db_job(job):
        print(f"{merchant_id}\t{'active' if active else 'inactive'}\t{name}")
    return 0


def cmd_key_create(args: argparse.Namespace) -> int:
    from boltgate.merchant import service

    async def job(db: Database) -> tuple[str, str]:
        async with db.writing() as session:
            issued = await service.create_key(session, args.merchant_id, args.name, test=args.test)
        return issued.key.id, issued.secret

    key_id, secret = _db_job(job)
    print(f"api key id: {key_id} (shown once; store the key now)")
    print(secret)
    return 0


def cmd_key_revoke(args: argparse.Namespace) -> int:
    from boltgate.merchant import service

    async def job(db: Database) -> None:
        async with db.writing() as session:
            await service.revoke_key(session, args.merchant_id, args.key_id)

    _db_job(job)
    print(f"revoked {args.key_id}")
    return 0


def _desk_job(job: Callable[[Desk], Awaitable[T]]) -> T:
    """Run ``job`` with the database and the backends (``boltgate.refund.operator``); a refused
    settlement exits 1, another domain error (unknown refund, bad input) exits 2."""
    from boltgate.errors import BoltgateError
    from boltgate.ops.logging import configure
    from boltgate.refund.operator import Refused, open_desk

    settings = _settings()
    configure(settings.log_level, settings.log_json)

    async def run() -> T:
        async with open_desk(settings) as desk:
            return await job(desk)

    try:
        return asyncio.run(run())
    except Refused as exc:
        print(f"boltgate: refused: {exc.detail}", file=sys.stderr)
        raise SystemExit(1) from exc
    except BoltgateError as exc:
        print(f"boltgate: {exc.detail}", file=sys.stderr)
        raise SystemExit(2) from exc


def cmd_refund_show(args: argparse.Namespace) -> int:
    from boltgate.refund import operator

    async def job(desk: Desk) -> list[str]:
        refund, view = await operator.show(desk, args.refund_id)
        return operator.describe(refund, view, desk.clock())

    print("\n".join(_desk_job(job)))
    return 0


def cmd_refund_list(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from boltgate.refund import operator

    older = None if args.older_than is None else timedelta(minutes=args.older_than)

    async def job(desk: Desk) -> list[str]:
        found = await operator.listing(desk, pending_only=args.pending, older_than=older, limit=args.limit)
        return [operator.row(refund, desk.clock()) for refund in found]

    print("\n".join(_desk_job(job)) or "no refunds")
    return 0


def cmd_refund_settle(args: argparse.Namespace) -> int:
    from boltgate.refund import operator

    outcome: operator.Outcome = "completed" if args.completed else "failed"

    async def job(desk: Desk) -> operator.Settled:
        return await operator.settle(
            desk, args.refund_id, outcome, reason=args.reason, force=args.force, preimage=args.preimage
        )

    settled = _desk_job(job)
    how = "on your word (--force)" if settled.forced else f"the backend says {settled.said}"
    print(f"refund {settled.refund.id} is now {settled.refund.status} ({how})")
    return 0


def cmd_secret_key_reseal(args: argparse.Namespace) -> int:
    from boltgate.kit.crypto import key_ring
    from boltgate.ops import rekey

    settings = _settings()
    refusal = rekey.refusal(settings)
    if refusal is not None:
        print(f"boltgate: {refusal}", file=sys.stderr)
        return 2
    counts = _db_job(lambda db: rekey.reseal(db, key_ring(settings), batch=args.batch))
    print("\n".join(rekey.report(counts)))
    return 1 if any(count.unreadable for count in counts) else 0


def cmd_secret_key_platform_key(_args: argparse.Namespace) -> int:
    from boltgate.ops import rekey

    secret, pubkey, pinned = rekey.platform_key(_settings())
    how = "BOLTGATE_NOSTR_PLATFORM_KEY" if pinned else "derived from the oldest server key of the ring"
    print(f"platform pubkey: {pubkey} ({how})")
    print(secret)
    return 0


def cmd_check_backend(args: argparse.Namespace) -> int:
    from boltgate.lightning.check import check
    from boltgate.lightning.registry import BackendEnv

    settings = _settings()
    env = BackendEnv(
        data_dir=settings.data_dir,
        network=settings.network,
        min_final_cltv_expiry=settings.min_final_cltv_expiry,
        dev_mode=settings.is_dev,
    )
    targets = [("backend", settings.lightning_url.get_secret_value())]
    if settings.lightning_failover_url is not None:
        targets.append(("failover", settings.lightning_failover_url.get_secret_value()))
    worst = 0
    for label, url in targets:
        report = asyncio.run(check(url, env, label=label, invoice=args.invoice))
        print("\n".join(report.lines))
        worst = max(worst, report.status)
    return worst


def cmd_dev_pay(args: argparse.Namespace) -> int:
    from boltgate.lightning.devnode import DevNode
    from boltgate.lightning.registry import BackendEnv, open_backend

    settings = _settings()
    if not settings.is_dev or settings.lightning_backend != "dev":
        print("boltgate: `dev pay` works only in dev mode with the dev node", file=sys.stderr)
        return 2
    target = args.invoice_or_hash.strip()

    async def run() -> tuple[str, str | None, str | None]:
        env = BackendEnv(data_dir=settings.data_dir, network=settings.network)
        node = open_backend(settings.lightning_url.get_secret_value(), env)
        assert isinstance(node, DevNode)
        try:
            if _HASH.match(target):
                result = await node.pay_payment_hash(target)
            else:
                result = await node.pay_invoice(target)
            return result.status.value, result.preimage, result.error
        finally:
            await node.close()

    status, preimage, error = asyncio.run(run())
    if preimage is None:
        print(f"boltgate: payment failed: {error}", file=sys.stderr)
        return 1
    print(f"status: {status}")
    print(f"preimage: {preimage}")
    return 0


def _worker_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError("must be a whole number from 1 to 64")
    return int(text)


def _whole(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError("must be a whole number")
    return int(text)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("must be a whole number of at least 1")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="boltgate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway (HTTP API, checkout, workers)")
    serve.add_argument("--host", help="bind address (default 127.0.0.1, or BOLTGATE_HOST)")
    serve.add_argument("--port", type=int, help="port (default 8402, or BOLTGATE_PORT)")
    serve.add_argument(
        "--workers",
        type=_worker_count,
        default=1,
        metavar="N",
        help="HTTP worker processes, 1-64 (default 1)",
    )
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("worker", help="run only the background workers").set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    backup = sub.add_parser(
        "backup", help="write a consistent backup of the database while the gateway runs (deploy/README.md)"
    )
    backup.add_argument("path", type=Path, help="a new file: SQLite database, or pg_dump custom format")
    backup.set_defaults(func=cmd_backup)

    merchant = sub.add_parser("merchant", help="merchants and API keys").add_subparsers(
        dest="merchant_command", required=True
    )
    create = merchant.add_parser("create", help="create a merchant; prints its API key on the last line")
    create.add_argument("name")
    create.set_defaults(func=cmd_merchant_create)
    merchant.add_parser("list", help="list merchants").set_defaults(func=cmd_merchant_list)
    key = merchant.add_parser("key", help="API keys").add_subparsers(dest="key_command", required=True)
    key_create = key.add_parser("create", help="issue another API key; printed on the last line")
    key_create.add_argument("merchant_id")
    key_create.add_argument("--name", default="cli")
    key_create.add_argument("--test", action="store_true", help="a le_test_ key")
    key_create.set_defaults(func=cmd_key_create)
    key_revoke = key.add_parser("revoke", help="revoke an API key")
    key_revoke.add_argument("merchant_id")
    key_revoke.add_argument("key_id")
    key_revoke.set_defaults(func=cmd_key_revoke)

    refund = sub.add_parser(
        "refund", help="look at refunds and settle one the backend cannot decide"
    ).add_subparsers(dest="refund_command", required=True)
    show = refund.add_parser("show", help="a refund, and what the backend says of its payment now")
    show.add_argument("refund_id")
    show.set_defaults(func=cmd_refund_show)
    listing = refund.add_parser("list", help="refunds of every merchant, oldest first")
    listing.add_argument("--pending", action="store_true", help="only pending refunds")
    listing.add_argument(
        "--older-than", type=_whole, metavar="MINUTES", help="only refunds created that long ago or more"
    )
    listing.add_argument("--limit", type=_whole, default=100, metavar="N", help="at most N (default 100)")
    listing.set_defaults(func=cmd_refund_list)
    settle = refund.add_parser(
        "settle",
        help="complete or fail a pending refund after checking the node by hand (the backend is asked first)",
    )
    settle.add_argument("refund_id")
    outcome = settle.add_mutually_exclusive_group(required=True)
    outcome.add_argument("--failed", action="store_true", help="the customer was not paid: free its amount")
    outcome.add_argument("--completed", action="store_true", help="the customer was paid")
    settle.add_argument("--preimage", metavar="HEX", help="proof of payment (with --completed)")
    settle.add_argument(
        "--force",
        action="store_true",
        help="decide although the backend cannot say (pending, unknown, unreachable)",
    )
    settle.add_argument(
        "--reason", required=True, metavar="TEXT", help="why (kept with a failed refund, and logged)"
    )
    settle.set_defaults(func=cmd_refund_settle)

    secret_key = sub.add_parser(
        "secret-key", help="rotate the server key (README.md, Rotating the server key)"
    ).add_subparsers(dest="secret_key_command", required=True)
    reseal = secret_key.add_parser(
        "reseal",
        help="seal every stored secret again with BOLTGATE_SECRET_KEY (exit 1: some open with no key)",
    )
    reseal.add_argument("--batch", type=_positive, default=500, metavar="N", help="rows per transaction")
    reseal.set_defaults(func=cmd_secret_key_reseal)
    secret_key.add_parser(
        "platform-key", help="the platform's Nostr secret key in use now, on the last line (to pin it)"
    ).set_defaults(func=cmd_secret_key_platform_key)

    check = sub.add_parser(
        "check-backend",
        help="check the Lightning backend (and failover) of the settings: node info or the error",
    )
    check.add_argument("--invoice", action="store_true", help="also create a 1 sat test invoice (60 s)")
    check.set_defaults(func=cmd_check_backend)

    dev = sub.add_parser("dev", help="dev-mode tools").add_subparsers(dest="dev_command", required=True)
    pay = dev.add_parser("pay", help="pay (settle) a dev node invoice by BOLT11 or payment hash")
    pay.add_argument("invoice_or_hash")
    pay.set_defaults(func=cmd_dev_pay)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
