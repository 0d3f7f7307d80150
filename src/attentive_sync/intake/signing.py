"""Request signing for the intake: ``X-Signature: sha256=<hex HMAC-SHA256 of the raw body>``.

The signature covers the exact bytes received, so the body is verified before it is
parsed, and a re-serialised body (different spacing, key order) does not verify.
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr

SIGNATURE_HEADER = "X-Signature"
_SCHEME = "sha256="


def _digest(secret: SecretStr, body: bytes) -> str:
    return hmac.new(secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()


def sign_body(secret: SecretStr | str, body: bytes) -> str:
    """The ``X-Signature`` header value a sender puts on ``body``."""
    key = secret if isinstance(secret, SecretStr) else SecretStr(secret)
    return _SCHEME + _digest(key, body)


def signature_matches(secret: SecretStr, body: bytes, header: str | None) -> bool:
    """Whether ``header`` signs ``body``; constant-time, so timing leaks nothing."""
    if not header or not header.startswith(_SCHEME):
        return False
    expected = _digest(secret, body)
    return hmac.compare_digest(expected.encode(), header[len(_SCHEME) :].strip().lower().encode())
