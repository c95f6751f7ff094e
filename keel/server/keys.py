"""API keys for LangGraph Server: a YAML file of sha256 hashes, each mapped to a user, role and tenant.

```yaml
keys:
  - sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    user: alice
    role: user
    tenant: acme
```

Only hashes are stored; `python -m keel.server.keys KEY` prints the hash of a key.
"""

from __future__ import annotations

import hashlib
import hmac
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from keel.context import InvalidContext, RunContext
from keel.identity import Principal
from keel.yamlfile import YamlDoc, YamlFileError

__all__ = ["ApiKeys", "ApiKeysError", "hash_key"]

_FIELDS = ("sha256", "user", "role", "tenant")


class ApiKeysError(YamlFileError):
    """The API-keys file is missing or malformed: ``FILE:LINE: reason``."""


def hash_key(key: str) -> str:
    """The stored form of an API key: hex sha256."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKeys:
    """The known key hashes. `lookup` compares in constant time."""

    by_hash: dict[str, Principal]

    @classmethod
    def load(cls, path: Path, *, roles: frozenset[str] | set[str] | None = None) -> ApiKeys:
        """Read and validate the file; a mistake names the file, the entry and the reason."""
        doc = YamlDoc.load(path, error=ApiKeysError, kind="API keys file")
        top = doc.top(("keys",), name="API keys", expects="a 'keys:' list")
        if "keys" not in top:
            raise doc.fail(1, "missing 'keys' (a list of sha256, user, role, tenant)")
        by_hash: dict[str, Principal] = {}
        for i, entry in enumerate(doc.sequence(top["keys"], "keys"), 1):
            by_hash.update(_entry(doc, i, entry, roles))
        return cls(by_hash)

    def lookup(self, key: str | None) -> Principal | None:
        """The principal of `key`, or None for a missing or unknown key."""
        if not key:
            return None
        digest = hash_key(key)
        found = None
        for stored, principal in self.by_hash.items():
            if hmac.compare_digest(stored, digest):
                found = principal
        return found


def _entry(
    doc: YamlDoc, i: int, node: yaml.Node, roles: frozenset[str] | set[str] | None
) -> dict[str, Principal]:
    where = f"key #{i}"
    fields = doc.mapping(node, where, _FIELDS, noun="field")
    entry = {name: doc.value(value) for name, value in fields.items()}
    digest = str(entry.get("sha256", "")).lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        at = fields.get("sha256", node)
        raise doc.fail(at, f"{where}: sha256 must be 64 hex characters (python -m keel.server.keys KEY)")
    role = str(entry.get("role", "user"))
    if roles is not None and role not in roles:
        raise doc.fail(
            fields.get("role", node), f"{where}: unknown role {role!r} (known: {', '.join(sorted(roles))})"
        )
    try:
        user, tenant = str(entry.get("user", "")), str(entry.get("tenant", "default"))
        ctx = RunContext(user_id=user, role=role, tenant=tenant)
    except InvalidContext as exc:
        raise doc.fail(node, f"{where}: {exc}") from None
    return {digest: Principal(user_id=ctx.user_id, role=ctx.role, tenant=ctx.tenant)}


if __name__ == "__main__":  # pragma: no cover - a tiny helper for operators
    for arg in sys.argv[1:]:
        print(hash_key(arg))
