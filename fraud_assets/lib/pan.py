"""Card-number (PAN) handling. The clear PAN exists only inside ingestion, in memory.

A PAN becomes `card_token` (keyed HMAC-SHA256 of the normalised PAN), `pan_bin` (first 6 digits)
and `pan_last4`. `mask_pans` blanks any 13-19 digit Luhn-valid run in free text, so a malformed
line or an offending value can be kept for investigators without keeping a card number.
"""

from __future__ import annotations

import hashlib
import hmac
import re

import numpy as np
import pandas as pd

# 13-19 digits, optionally separated by single spaces or dashes (how PANs are keyed in by hand).
PAN_CANDIDATE = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_NON_DIGIT = re.compile(r"[ -]")


def luhn_valid(digits: str) -> bool:
    if not digits.isdigit() or not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def luhn_check_digit(partial: str) -> str:
    """The digit that makes `partial + digit` Luhn-valid."""
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = ord(ch) - 48
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def normalise_pan(value: object) -> str | None:
    """Digits only, or None when the value cannot be a PAN (wrong length, letters, bad Luhn)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    digits = _NON_DIGIT.sub("", str(value).strip())
    return digits if luhn_valid(digits) else None


def mask_pans(text: str) -> str:
    """Replace every Luhn-valid 13-19 digit run (spaces/dashes allowed) by BIN + stars + last 4."""

    def _mask(m: re.Match[str]) -> str:
        digits = _NON_DIGIT.sub("", m.group(0))
        if not luhn_valid(digits):
            return m.group(0)
        return f"{digits[:6]}{'*' * (len(digits) - 10)}{digits[-4:]}"

    return PAN_CANDIDATE.sub(_mask, text)


def contains_pan(text: str) -> bool:
    return any(luhn_valid(_NON_DIGIT.sub("", m.group(0))) for m in PAN_CANDIDATE.finditer(text))


class Tokenizer:
    """Keyed tokenisation. Tokens are stable for a key; rotating the key changes every token
    (docs/runbooks.md: rotate the PAN key)."""

    def __init__(self, key: str):
        if not key or len(key) < 16:
            raise ValueError(
                "FRAUD_PAN_KEY must be set to a secret of at least 16 characters "
                "(make run generates a local demo key into $FRAUD_DATA_DIR/.pan_key)."
            )
        self._key = key.encode()

    def token(self, normalised_pan: str) -> str:
        return hmac.new(self._key, normalised_pan.encode(), hashlib.sha256).hexdigest()

    def tokenise_series(self, pans: pd.Series) -> pd.DataFrame:
        """card_token, pan_bin, pan_last4, pan_valid for a column of raw PAN strings.

        Tokenises each distinct value once: a day has millions of rows but few distinct cards.
        Invalid PANs get no token (None) and pan_valid False; their digits are never returned.
        """
        codes, uniques = pd.factorize(pans, use_na_sentinel=True)
        norm = [normalise_pan(u) for u in uniques]
        tok = np.array([self.token(n) if n else None for n in norm] + [None], dtype=object)
        bins = np.array([n[:6] if n else None for n in norm] + [None], dtype=object)
        last4 = np.array([n[-4:] if n else None for n in norm] + [None], dtype=object)
        idx = np.where(codes < 0, len(norm), codes)
        return pd.DataFrame(
            {"card_token": tok[idx], "pan_bin": bins[idx], "pan_last4": last4[idx]},
            index=pans.index,
        ).assign(pan_valid=lambda d: d["card_token"].notna())
