"""Reference data of the realistic profile: countries on the handbook's abstract 100x100 grid, their
currencies and time zones, issuer BINs, merchant category codes, FX starting points.

The grid stays abstract (customers still shop within distance 5 of home, as in the handbook); each
country owns a rectangle of it, so cross-border transactions happen near the borders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ISO 4217 minor-unit exponents of the currencies the feeds carry.
CURRENCY_EXPONENT: dict[str, int] = {"EUR": 2, "GBP": 2, "USD": 2, "CHF": 2, "SEK": 2, "JPY": 0}

# Units of quote currency per 1 EUR on 2018-04-01 (approximately), and the daily volatility of the
# random walk (log-returns).
FX_START: dict[str, float] = {"USD": 1.2321, "GBP": 0.8775, "CHF": 1.1780, "SEK": 10.286, "JPY": 131.15}
FX_DAILY_VOL = 0.004
FX_DECIMALS = 6

# Currencies no feed's FX file carries: rows in them are quarantined as unknown_currency.
UNKNOWN_CURRENCIES = ("BRL", "TRY", "ZAR", "INR")


@dataclass(frozen=True)
class Region:
    country: str
    currency: str
    x0: float
    x1: float
    y0: float
    y1: float
    timezones: tuple[tuple[float, str], ...]  # (x upper bound, IANA name), west to east
    bins: tuple[str, ...]  # issuer BINs of cards issued in this country


# North band (y >= 45): the euro area. South band: the rest. Shares of the grid: EUR 55 %,
# US 18 %, GB 9 %, JP 9 %, CH 4.5 %, SE 4.5 %.
REGIONS: tuple[Region, ...] = (
    Region("NL", "EUR", 0, 25, 45, 100, ((25, "Europe/Amsterdam"),), ("455701", "516732", "402360")),
    Region("DE", "EUR", 25, 60, 45, 100, ((60, "Europe/Berlin"),), ("492181", "539145", "426398")),
    Region("FR", "EUR", 60, 100, 45, 100, ((100, "Europe/Paris"),), ("497010", "513691", "456140")),
    Region("GB", "GBP", 0, 20, 0, 45, ((20, "Europe/London"),), ("465858", "522112", "475129")),
    Region("CH", "CHF", 20, 30, 0, 45, ((30, "Europe/Zurich"),), ("404171", "545868")),
    Region("SE", "SEK", 30, 40, 0, 45, ((40, "Europe/Stockholm"),), ("457197", "522226")),
    Region(
        "US",
        "USD",
        40,
        80,
        0,
        45,
        ((53.3, "America/New_York"), (66.6, "America/Chicago"), (80, "America/Los_Angeles")),
        ("414720", "542418", "440066", "222300"),
    ),
    Region("JP", "JPY", 80, 100, 0, 45, ((100, "Asia/Tokyo"),), ("356900", "435680", "528750")),
)

# Handbook profile: one place, one time zone, one currency; BINs only make the PANs look real.
HANDBOOK_COUNTRY = "NL"
HANDBOOK_TIMEZONE = "UTC"
HANDBOOK_BINS = ("455701", "516732", "402360")
HANDBOOK_MCC = "5999"

ECOMMERCE_TERMINAL_SHARE = 0.2

# Merchant category codes with their weights, for card-present and e-commerce merchants.
MCC_CARD_PRESENT: tuple[tuple[str, float], ...] = (
    ("5411", 0.30),  # grocery stores, supermarkets
    ("5812", 0.20),  # eating places, restaurants
    ("5541", 0.10),  # service stations
    ("5311", 0.10),  # department stores
    ("5912", 0.10),  # drug stores, pharmacies
    ("5999", 0.10),  # miscellaneous retail
    ("4121", 0.05),  # taxicabs
    ("7011", 0.05),  # hotels
)
MCC_ECOMMERCE: tuple[tuple[str, float], ...] = (
    ("5691", 0.25),  # clothing
    ("5732", 0.20),  # electronics
    ("5816", 0.20),  # digital goods: games
    ("5942", 0.15),  # book stores
    ("5967", 0.10),  # direct marketing, inbound telemarketing
    ("4722", 0.10),  # travel agencies
)

# 3-D Secure outcome of e-commerce authorisations (card-present ones carry none): Y authenticated,
# A attempted, U unavailable, N not authenticated. Fraudsters fail or dodge authentication more often.
THREE_DS_CODES = np.array(["Y", "A", "U", "N"], dtype=object)
THREE_DS_GENUINE = (0.82, 0.08, 0.06, 0.04)
THREE_DS_FRAUD = (0.35, 0.25, 0.22, 0.18)

# Chargeback reason codes by card scheme and channel.
REASON_VISA_CARD_PRESENT = "10.3"
REASON_VISA_CARD_ABSENT = "10.4"
REASON_MASTERCARD = "4837"
# Non-fraud disputes (fraud_assets/lib/reason_codes.py), drawn uniformly per scheme: consumer disputes
# (not received, not as described, credit not processed, cancelled), duplicate processing, no
# authorisation.
REASONS_VISA_NON_FRAUD = ("13.1", "13.2", "13.3", "13.6", "13.7", "12.6.1", "11.3")
REASONS_MASTERCARD_NON_FRAUD = ("4853", "4855", "4860", "4841", "4834", "4808")


def region_index(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Index into REGIONS of each grid point."""
    out = np.full(len(x), -1, dtype=np.int64)
    for i, r in enumerate(REGIONS):
        inside = (x >= r.x0) & (x < r.x1) & (y >= r.y0) & (y < r.y1)
        if r.x1 == 100:
            inside |= (x == 100) & (y >= r.y0) & (y < r.y1)
        if r.y1 == 100:
            inside |= (y == 100) & (x >= r.x0) & (x <= r.x1)
        out[(out < 0) & inside] = i
    return out


def timezone_of(region: Region, x: np.ndarray) -> np.ndarray:
    names = np.empty(len(x), dtype=object)
    names[:] = region.timezones[-1][1]
    for bound, name in reversed(region.timezones):
        names[x < bound] = name
    return names
