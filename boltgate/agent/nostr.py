"""Agent identity: BIP-340 Schnorr signatures and Nostr (NIP-01) events.

An agent's identity is a BIP-340 x-only public key (64 hex). It proves it holds the key by signing
:func:`challenge_message`, or a NIP-42 ``AUTH`` event (:func:`verify_auth_event`). The platform signs its
own events with :func:`sign_event` and checks events that agents sign with :func:`parse_event`.

**Challenge protocol** (public). ``challenge`` is the server's challenge, even-length hex of 1..128 bytes;
``pubkey`` the agent's 32-byte x-only key. The agent signs the 32 bytes
``SHA256(T || T || bytes(challenge) || bytes(pubkey))`` with ``T = SHA256("boltgate/agent-challenge/v1")``
(a BIP-340 tagged hash, so the signature means nothing in any other protocol) and sends the signature as
128 hex. The pubkey is in the message so a signature over one key's challenge cannot be presented for
another key; it is always the last 32 bytes, so the concatenation is unambiguous. Making each challenge
single-use is the caller's job.

**libsecp256k1 via coincurve 21.0.0**, checked on the 19 rows of bitcoin/bips ``bip-0340/test-vectors.csv``:

* ``PublicKeyXOnly(pk).verify(sig, msg)`` is right for every row whose key parses, including the 0-, 1-,
  17- and 100-byte messages of rows 15-18 (it passes ``len(message)`` to ``secp256k1_schnorrsig_verify``),
  but the constructor *raises* ``ValueError`` for the keys of rows 5 (off the curve) and 14 (not a field
  element), and ``verify`` raises for a signature that is not 64 bytes. So :func:`verify` parses keys and
  checks lengths itself: bad input is ``False``.
* ``PrivateKey.sign_schnorr`` calls ``secp256k1_schnorrsig_sign32`` and raises for rows 15-18 (messages
  must be 32 bytes). :func:`sign` calls ``secp256k1_schnorrsig_sign_custom`` of the same library through
  coincurve's cffi module (as :mod:`boltgate.lightning.bolt11` does), which takes any length and
  reproduces every vector; like coincurve it verifies each fresh signature (BIP-340's advice against faults).
* Speed: a verify is one ``secp256k1_schnorrsig_verify`` call; parsed keys (about 6 µs each) are kept in an
  LRU cache. ``timeit``: 40 µs per :func:`verify` (45 µs through ``PublicKeyXOnly(pk).verify``).

**NIP-01 serialisation**: the id is ``sha256`` of ``[0,pubkey,created_at,kind,tags,content]`` as UTF-8 JSON
without whitespace. NIP-01 lists the escapes ``\\n \\" \\\\ \\r \\t \\b \\f`` and says all other characters
are verbatim; taken literally that puts raw U+0000-U+001F in a JSON string, which RFC 8259 forbids, and
every implementation we read writes those as ``\\u00xx`` (lower-case hex): nostr-tools (``JSON.stringify``),
go-nostr (``escapeString``) and ``json.dumps(..., separators=(",", ":"), ensure_ascii=False)``, used here.
That matched Node 20's ``JSON.stringify`` byte for byte on a tag and content holding every Unicode scalar
value (DEL, U+2028/9 and non-ASCII raw; ``/`` unescaped). Lone surrogates (``json.loads`` can produce one)
have no UTF-8 form (``JSON.stringify`` would write ``\\ud800``): such events are refused, ``invalid_event``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from coincurve._libsecp256k1 import ffi as _ffi
from coincurve._libsecp256k1 import lib as _lib
from coincurve.context import GLOBAL_CONTEXT as _SECP_CONTEXT

Tags = Sequence[Sequence[str]]

CHALLENGE_TAG = "boltgate/agent-challenge/v1"
AUTH_KIND = 22242
"""NIP-42 ``AUTH``: an ephemeral event carrying ``["challenge", <challenge>]``."""

MAX_TAGS = 2000
MAX_TAG_ITEMS = 100
MAX_TAG_CHARS = 8192
MAX_CONTENT_CHARS = 65536

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_HEX128 = re.compile(r"[0-9a-fA-F]{128}")
_LOWER64 = re.compile(r"[0-9a-f]{64}")
_LOWER128 = re.compile(r"[0-9a-f]{128}")
_CHALLENGE = re.compile(r"(?:[0-9a-fA-F]{2}){1,128}")
_WIRE_KEYS = ("id", "pubkey", "created_at", "kind", "tags", "content", "sig")
_EVENT_KEYS = frozenset(_WIRE_KEYS)
_EXTRAPARAMS_MAGIC = b"\xda\x6f\xb3\x8c"  # SECP256K1_SCHNORRSIG_EXTRAPARAMS_MAGIC in secp256k1_schnorrsig.h
_CTX = _SECP_CONTEXT.ctx


class NostrError(ValueError):
    """A client sent a bad key, signature or event; ``code`` is the stable snake_case problem code."""

    def __init__(self, code: str, detail: str | None = None) -> None:
        self.code = code
        self.detail = detail or code
        super().__init__(self.detail)


@functools.lru_cache(maxsize=4096)
def _xonly_key(pubkey_lower: str) -> Any:
    """The parsed key (lift_x), or None off the curve. Cached: parsing is ~15% of a verify."""
    key = _ffi.new("secp256k1_xonly_pubkey *")
    if not _lib.secp256k1_xonly_pubkey_parse(_CTX, key, bytes.fromhex(pubkey_lower)):
        return None
    return key


def parse_pubkey(text: str) -> str:
    """64 hex characters (either case) naming a point on secp256k1 -> the lower-case form."""
    if not isinstance(text, str) or not _HEX64.fullmatch(text):
        raise NostrError("invalid_pubkey", "a public key is 64 hex characters (BIP-340 x-only)")
    lower = text.lower()
    if _xonly_key(lower) is None:
        raise NostrError("invalid_pubkey", "the public key is not a point on secp256k1")
    return lower


def parse_signature(text: str) -> bytes:
    """128 hex characters (either case) -> the 64-byte signature."""
    if not isinstance(text, str) or not _HEX128.fullmatch(text):
        raise NostrError("invalid_signature", "a signature is 128 hex characters (BIP-340)")
    return bytes.fromhex(text)


def verify(pubkey_hex: str, message: bytes, signature: bytes) -> bool:
    """BIP-340 verification of a message of any length; malformed input is simply ``False``."""
    if not (isinstance(pubkey_hex, str) and isinstance(message, bytes) and isinstance(signature, bytes)):
        return False
    if len(signature) != 64 or not _HEX64.fullmatch(pubkey_hex):
        return False
    key = _xonly_key(pubkey_hex.lower())
    if key is None:
        return False
    return bool(_lib.secp256k1_schnorrsig_verify(_CTX, signature, message, len(message), key))


def _keypair(secret: bytes) -> Any:
    keypair = _ffi.new("secp256k1_keypair *")
    valid = isinstance(secret, bytes) and len(secret) == 32
    if not valid or not _lib.secp256k1_keypair_create(_CTX, keypair, secret):
        raise ValueError("a secret key is 32 bytes encoding 1..n-1")
    return keypair


def _xonly_of(keypair: Any) -> Any:
    xonly = _ffi.new("secp256k1_xonly_pubkey *")
    _lib.secp256k1_keypair_xonly_pub(_CTX, xonly, _ffi.NULL, keypair)
    return xonly


def sign(secret: bytes, message: bytes, aux_rand: bytes | None = None) -> bytes:
    """BIP-340 signature (64 bytes) of a message of any length; ``aux_rand`` defaults to fresh randomness."""
    aux = os.urandom(32) if aux_rand is None else aux_rand
    if not isinstance(aux, bytes) or len(aux) != 32:
        raise ValueError("aux_rand is 32 bytes")
    keypair = _keypair(secret)
    params = _ffi.new("secp256k1_schnorrsig_extraparams *")
    params.magic = _EXTRAPARAMS_MAGIC
    params.noncefp = _ffi.NULL  # libsecp256k1's BIP-340 nonce function
    aux_buffer = _ffi.new("unsigned char[32]", aux)
    params.ndata = aux_buffer
    out = _ffi.new("unsigned char[64]")
    if not _lib.secp256k1_schnorrsig_sign_custom(_CTX, out, message, len(message), keypair, params):
        raise ValueError("signing failed")
    signature = bytes(_ffi.buffer(out))
    if not _lib.secp256k1_schnorrsig_verify(_CTX, signature, message, len(message), _xonly_of(keypair)):
        raise ValueError("the fresh signature does not verify")
    return signature


def pubkey_of(secret: bytes) -> str:
    """The x-only public key of a secret key, as 64 lower-case hex."""
    out = _ffi.new("unsigned char[32]")
    _lib.secp256k1_xonly_pubkey_serialize(_CTX, out, _xonly_of(_keypair(secret)))
    return bytes(_ffi.buffer(out)).hex()


def tagged_hash(tag: str, data: bytes) -> bytes:
    """BIP-340 tagged hash: ``SHA256(SHA256(tag) || SHA256(tag) || data)``."""
    prefix = hashlib.sha256(tag.encode()).digest()
    return hashlib.sha256(prefix + prefix + data).digest()


def challenge_message(challenge_hex: str, pubkey_hex: str) -> bytes:
    """The 32 bytes an agent signs to prove its key (protocol in the module docstring)."""
    if not isinstance(challenge_hex, str) or not _CHALLENGE.fullmatch(challenge_hex):
        raise NostrError("invalid_challenge", "a challenge is even-length hex of 1..128 bytes")
    return tagged_hash(CHALLENGE_TAG, bytes.fromhex(challenge_hex) + bytes.fromhex(parse_pubkey(pubkey_hex)))


@dataclass(frozen=True, slots=True)
class Event:
    """A checked NIP-01 event; ``tags`` are tuples so the event is hashable and immutable."""

    id: str
    pubkey: str
    created_at: int
    kind: int
    tags: tuple[tuple[str, ...], ...]
    content: str
    sig: str

    def to_json(self) -> dict[str, Any]:
        """The NIP-01 wire object."""
        wire = {name: getattr(self, name) for name in _WIRE_KEYS}
        wire["tags"] = [list(tag) for tag in self.tags]
        return wire


def _invalid(detail: str) -> NostrError:
    return NostrError("invalid_event", detail)


def _checked(created_at: Any, kind: Any, tags: Any, content: Any) -> tuple[tuple[str, ...], ...]:
    """Type and size checks shared by what we sign and what we accept (``type(x) is int`` refuses True)."""
    if type(created_at) is not int or not 0 <= created_at < 2**32:
        raise _invalid("created_at is an integer number of seconds in 0..2^32-1")
    if type(kind) is not int or not 0 <= kind <= 65535:
        raise _invalid("kind is an integer in 0..65535")
    if not isinstance(content, str) or len(content) > MAX_CONTENT_CHARS:
        raise _invalid(f"content is a string of at most {MAX_CONTENT_CHARS} characters")
    if not isinstance(tags, list | tuple) or len(tags) > MAX_TAGS:
        raise _invalid(f"tags is a list of at most {MAX_TAGS} tags")
    out: list[tuple[str, ...]] = []
    for tag in tags:
        if not isinstance(tag, list | tuple) or not 1 <= len(tag) <= MAX_TAG_ITEMS:
            raise _invalid(f"each tag is a list of 1..{MAX_TAG_ITEMS} strings")
        for item in tag:
            if not isinstance(item, str) or len(item) > MAX_TAG_CHARS:
                raise _invalid(f"tag items are strings of at most {MAX_TAG_CHARS} characters")
        out.append(tuple(tag))
    return tuple(out)


def _encode(pubkey: str, created_at: int, kind: int, tags: Tags, content: str) -> bytes:
    text = json.dumps([0, pubkey, created_at, kind, tags, content], separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid("the event holds a lone UTF-16 surrogate, which has no UTF-8 form") from None


def serialize(pubkey: str, created_at: int, kind: int, tags: Tags, content: str) -> bytes:
    """The NIP-01 bytes whose sha256 is the event id (escaping rules in the module docstring)."""
    if not isinstance(pubkey, str) or not _LOWER64.fullmatch(pubkey):
        raise NostrError("invalid_pubkey", "pubkey is 64 lower-case hex characters")
    return _encode(pubkey, created_at, kind, _checked(created_at, kind, tags, content), content)


def event_id(pubkey: str, created_at: int, kind: int, tags: Tags, content: str) -> str:
    """The NIP-01 event id: sha256 of :func:`serialize`, as lower-case hex."""
    return hashlib.sha256(serialize(pubkey, created_at, kind, tags, content)).hexdigest()


def sign_event(secret: bytes, created_at: int, kind: int, tags: Tags, content: str) -> Event:
    """A NIP-01 event signed with ``secret``; the same limits apply as to events we accept."""
    pubkey = pubkey_of(secret)
    checked = _checked(created_at, kind, tags, content)
    digest = hashlib.sha256(_encode(pubkey, created_at, kind, checked, content)).digest()
    return Event(digest.hex(), pubkey, created_at, kind, checked, content, sign(secret, digest).hex())


def parse_event(data: Any) -> Event:
    """Check a client's NIP-01 event object: shape, id and signature.

    Codes: ``invalid_pubkey`` and ``invalid_signature`` for anything wrong with those fields (format or
    cryptography), ``event_id_mismatch`` when the id is not the hash of the event, ``invalid_event`` for
    everything else (missing or extra keys, wrong types, limits, an id that is not 64 lower-case hex).
    """
    if not isinstance(data, dict) or data.keys() != _EVENT_KEYS:
        raise _invalid("an event is an object with exactly: " + ", ".join(sorted(_EVENT_KEYS)))
    claimed_id, pubkey, sig = data["id"], data["pubkey"], data["sig"]
    if not isinstance(claimed_id, str) or not _LOWER64.fullmatch(claimed_id):
        raise _invalid("id is 64 lower-case hex characters")
    if not isinstance(pubkey, str) or not _LOWER64.fullmatch(pubkey):
        raise NostrError("invalid_pubkey", "pubkey is 64 lower-case hex characters")
    if not isinstance(sig, str) or not _LOWER128.fullmatch(sig):
        raise NostrError("invalid_signature", "sig is 128 lower-case hex characters")
    created_at, kind, content = data["created_at"], data["kind"], data["content"]
    tags = _checked(created_at, kind, data["tags"], content)
    if _xonly_key(pubkey) is None:
        raise NostrError("invalid_pubkey", "the public key is not a point on secp256k1")
    digest = hashlib.sha256(_encode(pubkey, created_at, kind, tags, content)).digest()
    if digest.hex() != claimed_id:
        raise NostrError("event_id_mismatch", "id is not the sha256 of the serialised event")
    if not verify(pubkey, digest, bytes.fromhex(sig)):
        raise NostrError("invalid_signature", "sig is not a valid signature of id by pubkey")
    return Event(claimed_id, pubkey, created_at, kind, tags, content, sig)


def tag_values(event: Event, name: str) -> list[str]:
    """The first value of each tag called ``name`` (tags with no value are skipped)."""
    return [tag[1] for tag in event.tags if len(tag) > 1 and tag[0] == name]


def verify_auth_event(data: Any, *, challenge: str, pubkey: str, now: int, max_skew: int = 600) -> Event:
    """Accept a NIP-42-style kind 22242 event as proof that ``pubkey`` answered ``challenge``.

    Any Nostr signer (NIP-07 browser extension, NIP-46 bunker) can produce one, unlike the raw
    :func:`challenge_message` signature. ``event_too_old`` also covers events dated too far ahead.
    """
    if not challenge:
        raise ValueError("the server's challenge is empty")
    event = parse_event(data)
    if event.kind != AUTH_KIND:
        raise NostrError("wrong_kind", f"an auth event has kind {AUTH_KIND}")
    if challenge not in tag_values(event, "challenge"):
        raise NostrError("challenge_mismatch", "no challenge tag carries this challenge")
    if event.pubkey != pubkey.lower():
        raise NostrError("pubkey_mismatch", "the event is signed by another key")
    if abs(event.created_at - now) > max_skew:
        raise NostrError("event_too_old", f"created_at is more than {max_skew} s from the server's clock")
    return event
