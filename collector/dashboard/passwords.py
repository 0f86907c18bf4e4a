"""Admin passwords, hashed with scrypt (the standard library's; memory-hard and slow on
purpose: about 50 ms and 16 MiB a guess)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

N, R, P = 2**14, 8, 1
MIN_LENGTH = 8
MAX_LENGTH = 1024  # scrypt hashes any length; a megabyte "password" is an attack


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r, dklen=32)


def check_password(password: str) -> str | None:
    """What is wrong with a new password, or None."""
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    return None


def hash_password(password: str) -> str:
    """`scrypt$N$r$p$salt$hash`: the cost travels with the hash, so it can be raised
    later without locking anyone out."""
    salt = secrets.token_bytes(16)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(_scrypt(password, salt, N, R, P))}"


def verify_password(password: str, stored: str | None) -> bool:
    """Whether `password` matches; with no stored hash (unknown account) a hash is
    computed all the same, so the answer takes as long either way."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        scheme, n, r, p, salt, digest = (stored or "").split("$")
        params = int(n), int(r), int(p)
        if scheme != "scrypt":
            raise ValueError(scheme)
    except ValueError:
        _scrypt(password, b"telltale-no-such-admin", N, R, P)
        return False
    return hmac.compare_digest(_scrypt(password, _unb64(salt), *params), _unb64(digest))
