"""``GET /api/mcp/version-check?currentVersion=2.1.1``: should the caller's MCP server update?

The latest version, the oldest still supported and the release notes are the operator's settings
(``BOLTGATE_MCP_LATEST_VERSION``, ``BOLTGATE_MCP_MINIMUM_VERSION``, ``BOLTGATE_MCP_RELEASE_NOTES``).
Versions compare by Semantic Versioning 2.0 precedence (``2.1.1-rc.1`` < ``2.1.1`` < ``2.10.0``;
build metadata ignored; a leading ``v`` and a missing patch number are accepted). A
``currentVersion`` that is not a version is a 400 ``invalid_version``.
"""

from __future__ import annotations

import re
from functools import total_ordering
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from boltgate.errors import ValidationFailed
from boltgate.web import Ctx, json_response, problems

router = APIRouter(tags=["platform"])

_VERSION = re.compile(
    r"^v?(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})(?:\.(0|[1-9]\d{0,8}))?"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)


@total_ordering
class Version:
    """A parsed version, ordered by SemVer precedence."""

    __slots__ = ("core", "pre")

    def __init__(self, core: tuple[int, int, int], pre: tuple[str, ...]) -> None:
        self.core = core
        self.pre = pre

    def _key(self) -> tuple[tuple[int, int, int], int, tuple[tuple[int, int, str], ...]]:
        # a release sorts after its pre-releases; numeric identifiers before alphanumeric ones
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.pre)
        return self.core, 0 if self.pre else 1, pre

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key() == other._key()

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def parse_version(text: str) -> Version:
    match = _VERSION.match(text.strip()) if len(text) <= 64 else None
    if match is None:
        raise ValueError(f"{text[:64]!r} is not a version like 2.1.1")
    major, minor, patch, pre = match.groups()
    return Version((int(major), int(minor), int(patch or 0)), tuple(pre.split(".")) if pre else ())


@router.get(
    "/api/mcp/version-check",
    responses=problems(400, 429),
    summary="Whether an MCP server of currentVersion should (or must) update",
)
async def version_check(
    ctx: Ctx,
    currentVersion: Annotated[str, Query(max_length=64)],  # the API's name
) -> Response:
    settings = ctx.settings
    try:
        current = parse_version(currentVersion)
    except ValueError as exc:
        raise ValidationFailed(
            str(exc), errors={"currentVersion": ["must be a version like 2.1.1"]}, code="invalid_version"
        ) from None
    latest = parse_version(settings.mcp_latest_version)
    minimum = parse_version(settings.mcp_minimum_version) if settings.mcp_minimum_version else None
    required = minimum is not None and current < minimum
    recommended = current < latest
    if required:
        message = (
            f"Version {currentVersion} is no longer supported by this server: update to "
            f"{settings.mcp_latest_version} (at least {settings.mcp_minimum_version})."
        )
    elif recommended:
        message = f"Version {settings.mcp_latest_version} is available (you run {currentVersion})."
    else:
        message = "You are running the latest version."
    return json_response(
        {
            "latestVersion": settings.mcp_latest_version,
            "updateRequired": required,
            "updateRecommended": recommended,
            "message": message,
            "releaseNotes": settings.mcp_release_notes,
        }
    )
