"""Encrypt secrets at rest (exchange keys, broker API keys) with the per-installation key.

The key file lives outside the database (``QD_SECRET_KEY_FILE``); a database dump alone reveals
no secret. Tokens are Fernet (AES-128-CBC + HMAC-SHA256) under a key derived with HKDF.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from quantdesk.core.errors import ConfigError

PREFIX = "enc:v1:"


class SecretBox:
    """Seal and open short secrets; sealed text starts with ``enc:v1:``."""

    def __init__(self, installation_key: bytes, *, purpose: bytes = b"quantdesk secrets at rest"):
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(installation_key)
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, plain: str) -> str:
        return PREFIX + self._fernet.encrypt(plain.encode()).decode()

    def open(self, sealed: str) -> str:
        """The plain secret; a value stored before encryption existed is returned as it is."""
        if not sealed.startswith(PREFIX):
            return sealed
        try:
            return self._fernet.decrypt(sealed[len(PREFIX):].encode()).decode()
        except InvalidToken:
            raise ConfigError("a stored secret cannot be decrypted: QD_SECRET_KEY_FILE is not the key it was "
                              "sealed with") from None

    @staticmethod
    def is_sealed(value: object) -> bool:
        return isinstance(value, str) and value.startswith(PREFIX)
