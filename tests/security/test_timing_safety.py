"""No secret is compared with ``==`` or ``!=``: a scan of every module of ``boltgate/``.

A comparison whose operands name a secret (secret, token, signature, preimage, HMAC, MAC,
password, API key, CSRF, digest, k1) must use ``hmac.compare_digest``. Not counted: comparisons
with a literal, a module constant (``DEV_SECRET_KEY``), a truth value or an id (an API key's id
is not the key; a Nostr event's id is the hash of the public event), and comparisons of hashes
(a payment hash is public; stored secrets are found by their hash, which tells an attacker
nothing of the secret). Inside a function named like a check (``csrf_matches``, ``verify_echo``,
``signature_valid``) every comparison of two values counts, whatever their names. The few
comparisons found that are safe are listed in ``REVIEWED`` with the reason; a new plain
comparison of a secret fails this test.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

BOLTGATE = Path(__file__).resolve().parents[2] / "boltgate"
SECRET_NAME = re.compile(
    r"secret|token|signature|\bsig\b|preimage|hmac|\bmac\b|password|api_?key|root_?key|csrf|digest|\bk1\b",
    re.I,
)


def _spelled(node: ast.expr) -> str:
    return ast.unparse(node)


def _exempt(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant | ast.Compare):
        return True  # a literal, or a truth value (``(a is None) == (b is None)``)
    if isinstance(node, ast.Name) and node.id.isupper():
        return True  # a module constant
    spelled = _spelled(node).lower()
    return "hash" in spelled or spelled.endswith("id")  # a hash, or an id (ApiKey.id, key_id)


# Comparisons the scan finds that compare nothing secret, each reviewed:
REVIEWED = {
    # public keys
    "boltgate/agent/identity.py: row.pubkey != pubkey",
    "boltgate/agent/identity.py: AgentChallenge.pubkey == pubkey",
    "boltgate/agent/nostr.py: event.pubkey != pubkey.lower()",
    # a challenge is a nonce the agent signs with its key: knowing it grants nothing
    "boltgate/agent/identity.py: AgentChallenge.challenge == challenge",
    # structure: a Nostr tag's name; a text against itself without its blanks
    "boltgate/nostr/relay.py: tag[0] == name[1]",
    "boltgate/shopify/schemas.py: value != value.strip()",
}
SECRET_FUNCTION = re.compile(SECRET_NAME.pattern + r"|verif|valid|matches|authentic", re.I)


def _comparisons(tree: ast.AST) -> list[tuple[ast.Compare, str]]:
    """Every ``==``/``!=`` comparison with the name of the function it is in ("" at module level)."""
    found: list[tuple[ast.Compare, str]] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, child.name)
            else:
                if isinstance(child, ast.Compare) and any(
                    isinstance(op, ast.Eq | ast.NotEq) for op in child.ops
                ):
                    found.append((child, function))
                visit(child, function)

    visit(tree, "")
    return found


def secret_comparisons(root: Path) -> list[str]:
    """Plain comparisons of operands named like secrets, or of any two values inside a function
    named like a check of one (``csrf_matches``, ``verify_echo``, ``signature_valid``)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node, function in _comparisons(ast.parse(path.read_text(encoding="utf-8"))):
            operands = [node.left, *node.comparators]
            if any(_exempt(operand) for operand in operands):
                continue
            named = any(SECRET_NAME.search(_spelled(operand)) for operand in operands)
            if named or SECRET_FUNCTION.search(function):
                found.append(f"{path.relative_to(root.parent)}: {ast.unparse(node)}")
    return found


def test_secrets_are_compared_in_constant_time() -> None:
    unexpected = [hit for hit in secret_comparisons(BOLTGATE) if hit not in REVIEWED]
    assert unexpected == [], "use hmac.compare_digest, or review the line and add it to REVIEWED"


def test_every_reviewed_comparison_still_exists() -> None:
    """A reviewed line that changed or is gone leaves the list, so the list stays true."""
    assert REVIEWED - set(secret_comparisons(BOLTGATE)) == set()


def test_the_scan_finds_a_plain_comparison_of_a_secret(tmp_path: Path) -> None:
    package = tmp_path / "boltgate"
    package.mkdir()
    (package / "mod.py").write_text(
        "import hmac\n"
        "def check(given_token, stored_token, payment_hash, preimage_hash):\n"
        "    a = given_token == stored_token\n"
        "    b = hmac.compare_digest(given_token, stored_token)\n"
        "    c = payment_hash == preimage_hash\n"
        "    d = given_token != ''\n"
        "    return a, b, c, d\n"
        "def csrf_matches(expected, given):\n"
        "    return expected == given\n",
        encoding="utf-8",
    )
    assert secret_comparisons(package) == [
        "boltgate/mod.py: given_token == stored_token",
        "boltgate/mod.py: expected == given",
    ]
