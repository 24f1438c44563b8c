"""HMAC signatures for registry records, with a key that never lives in the warehouse.

Whoever can write the warehouse can write a SHA-256 next to a swapped artifact; they cannot compute an
HMAC without the key (`FRAUD_REGISTRY_KEY`, a secret of the deployment, like the PAN key). A record is
signed over its canonical JSON (sorted keys, every value as text), so a value reads back from DuckDB and
verifies the same way it was signed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

MIN_KEY_LENGTH = 16


class SignatureError(RuntimeError):
    """A registry record's signature does not verify."""


def canonical_json(record: Mapping[str, Any]) -> str:
    """Sorted keys, every non-null value as its text: what is signed and what is verified."""
    return json.dumps(
        {k: None if v is None else str(v) for k, v in record.items()}, sort_keys=True, ensure_ascii=True
    )


class Signer:
    """Signs and verifies records with one key; `key_id` names the key without revealing it."""

    def __init__(self, key: str):
        if not key or len(key) < MIN_KEY_LENGTH:
            raise ValueError(
                f"FRAUD_REGISTRY_KEY must be a secret of at least {MIN_KEY_LENGTH} characters "
                "(scripts/with-env generates a local demo key outside $FRAUD_DATA_DIR; production sets it "
                "from its secret store)"
            )
        self._key = key.encode()

    @property
    def key_id(self) -> str:
        return hmac.new(self._key, b"fraud_assets registry key id", hashlib.sha256).hexdigest()[:16]

    def sign(self, kind: str, record: Mapping[str, Any]) -> str:
        """HMAC-SHA256 of `kind` and the record; `kind` keeps a version row and an event apart."""
        message = f"{kind}\n{canonical_json(record)}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def verify(self, kind: str, record: Mapping[str, Any], signature: str | None) -> bool:
        return bool(signature) and hmac.compare_digest(self.sign(kind, record), str(signature))
