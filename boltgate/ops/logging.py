"""structlog JSON logs with a request id on every line, and secrets kept out of them.

Standard-library loggers (uvicorn, SQLAlchemy) go through the same processors. The redaction
processor masks values under secret-looking keys and anything shaped like an API key, webhook
secret or macaroon credential, wherever it appears in a log line.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog
from structlog.types import EventDict, Processor, WrappedLogger

_SECRET_KEYS = re.compile(r"(api_?key|secret|password|preimage|authorization|macaroon|token|cookie)", re.I)
_SECRET_VALUES = re.compile(
    r"(le_(live|test)_[0-9A-Za-z]+|whsec_[0-9A-Za-z+/=]+|(L402|LSAT|Payment) [^\s\"']+)"
)
REDACTED = "[redacted]"
# a refund claim link's secret tag in a request path (/lnurlw/<refund id>/<tag>[/callback])
_CLAIM_TAG = re.compile(r"(/lnurlw/[^/\s]+/)[0-9A-Za-z_-]{16,}")


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _CLAIM_TAG.sub(r"\1" + REDACTED, _SECRET_VALUES.sub(REDACTED, value))
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_KEYS.search(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def redact(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    for key, value in list(event_dict.items()):
        event_dict[key] = REDACTED if _SECRET_KEYS.search(key) else _scrub(value)
    return event_dict


def configure(level: str = "INFO", json: bool = True) -> None:
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        # drops lines below the level before any processor runs (a filtered debug call is ~free)
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx logs every request URL at INFO: webhook URLs may carry the receiver's tokens, and a
    # line per delivery costs more than the delivery's own bookkeeping. Failures are logged by us.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
