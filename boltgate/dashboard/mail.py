"""Sign-in and address-confirmation emails over SMTP (the standard library's client, in a thread:
one email per request).

Sent in the background, after the answer: the time the answer takes must not tell whether the
address belongs to a merchant. A failure is logged without the link (it is a credential).
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage

import structlog

from boltgate.config import Settings

log = structlog.get_logger(__name__)
_PENDING: set[asyncio.Task[None]] = set()  # held so that the loop does not drop them mid-send


def configured(settings: Settings) -> bool:
    return bool(settings.smtp_host)


def sign_in_message(settings: Settings, to: str, links: list[tuple[str, str]], minutes: int) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = "Your boltgate sign-in link"
    message["From"] = settings.smtp_from
    message["To"] = to
    lines = ["Someone (we hope you) asked to sign in to the boltgate dashboard.", ""]
    for name, url in links:
        lines += [f"{name}:", url, ""]
    lines += [f"Each link works once, within {minutes} minutes.", "If it was not you, ignore this email."]
    message.set_content("\n".join(lines))
    return message


def confirm_message(settings: Settings, to: str, account: str, url: str, hours: int) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = "Confirm your email address for boltgate"
    message["From"] = settings.smtp_from
    message["To"] = to
    lines = [
        f"Someone (we hope you) asked for dashboard sign-in links of the boltgate account {account}",
        "to go to this address. To confirm, open:",
        "",
        url,
        "",
        f"The link works once, within {hours} hours. If it was not you, ignore this email:",
        "nothing changes without the confirmation.",
    ]
    message.set_content("\n".join(lines))
    return message


def _send_now(settings: Settings, message: EmailMessage) -> None:
    assert settings.smtp_host is not None
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_seconds) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_user:
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            smtp.login(settings.smtp_user, password)
        smtp.send_message(message)


async def send(settings: Settings, message: EmailMessage) -> None:
    try:
        await asyncio.to_thread(_send_now, settings, message)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("dashboard_email_failed", error=type(exc).__name__, smtp_host=settings.smtp_host)


def send_later(settings: Settings, message: EmailMessage) -> None:
    task = asyncio.get_running_loop().create_task(send(settings, message))
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)
