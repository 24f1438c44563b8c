"""Card scheme chargeback reason codes: which are fraud disputes, which are not.

A scheme chargeback feed mixes fraud disputes with non-fraud ones (processing errors, authorisation
issues, consumer disputes such as "merchandise not received"); only the fraud ones are fraud labels
(cleaned/labels). Codes are compared after trim, case-insensitively (`classify_sql`); a code in neither
set is unknown and its chargeback is quarantined, so a new or legacy code is looked at by a person
before it can become a label. A test keeps the simulator's codes (simulator/reference.py) in these sets.

Sources (pinned here, reviewed by hand; extend deliberately):
- Visa: Visa Claims Resolution dispute categories (Visa Core Rules, Dispute Management Guidelines for
  Visa Merchants, 2018 onwards): 10 fraud, 11 authorisation, 12 processing errors, 13 consumer disputes.
  Legacy pre-2018 numeric codes (e.g. 83, 75) are not listed.
- Mastercard: Chargeback Guide, reason codes after the 2017 simplification (fraud: 4837, 4840, 4849,
  4863, 4870, 4871; authorisation, point-of-interaction errors and cardholder disputes otherwise).
- American Express: Merchant Regulations, chargeback reason codes (fraud category F10-F31; FR2 Fraud
  Full Recourse Program). FR4 / FR6 (Immediate / Partial Immediate Chargeback Program) charge back
  any dispute of a merchant in the programme, and M01 (chargeback authorisation), R03 / R13 (no reply
  to an inquiry) follow a dispute of any kind: fraud or not, so all are deliberately in neither set.
- Discover: Dispute Rules Manual (fraud UA01, UA02, UA05, UA06; the usual non-fraud dispute codes).
"""

from __future__ import annotations

from collections.abc import Iterable

FRAUD_REASON_CODES: dict[str, frozenset[str]] = {
    # 10.1 EMV liability shift counterfeit, 10.2 EMV liability shift non-counterfeit, 10.3 other fraud
    # card-present, 10.4 other fraud card-absent, 10.5 Visa Fraud Monitoring Program
    "visa": frozenset({"10.1", "10.2", "10.3", "10.4", "10.5"}),
    # 4837 no cardholder authorisation, 4840 fraudulent processing, 4849 questionable merchant
    # activity, 4863 cardholder does not recognise (potential fraud), 4870 chip liability shift,
    # 4871 chip/PIN liability shift
    "mastercard": frozenset({"4837", "4840", "4849", "4863", "4870", "4871"}),
    # F10 missing imprint, F14 missing signature, F24 no card member authorisation, F29 card not
    # present, F30 EMV counterfeit, F31 EMV lost/stolen/non-received, FR2 Fraud Full Recourse Program
    "amex": frozenset({"F10", "F14", "F24", "F29", "F30", "F31", "FR2"}),
    # UA01 card present, UA02 card not present, UA05 chip counterfeit, UA06 chip and PIN
    "discover": frozenset({"UA01", "UA02", "UA05", "UA06"}),
}
NON_FRAUD_REASON_CODES: dict[str, frozenset[str]] = {
    # 11.x authorisation; 12.x processing errors (12.6.1 duplicate processing, 12.6.2 paid by other
    # means); 13.x consumer disputes (13.1 merchandise/services not received ... 13.9 non-receipt of cash)
    "visa": frozenset(
        {"11.1", "11.2", "11.3"}
        | {"12.1", "12.2", "12.3", "12.4", "12.5", "12.6", "12.6.1", "12.6.2", "12.7"}
        | {f"13.{i}" for i in range(1, 10)}
    ),
    # 4807 warning bulletin, 4808 authorisation-related, 4812 account number not on file, 4831 amount
    # differs, 4834 point-of-interaction error (duplicate processing), 4841 cancelled recurring, 4842
    # late presentment, 4846 currency, 4853 cardholder dispute, 4854 cardholder dispute (US), 4855 goods
    # or services not provided, 4859 addendum/no-show/ATM, 4860 credit not processed
    "mastercard": frozenset(
        {"4807", "4808", "4812", "4831", "4834", "4841", "4842", "4846", "4853", "4854", "4855", "4859"}
        | {"4860"}
    ),
    # A authorisation, C card member disputes, M10/M49 vehicle rental, P processing errors. M01
    # (chargeback authorisation) and R03/R13 (no or insufficient reply to an inquiry) follow a dispute of
    # any kind, fraud included, so they are in neither set.
    "amex": frozenset(
        {"A01", "A02", "A08"}
        | {"C02", "C04", "C05", "C08", "C14", "C18", "C28", "C31", "C32"}
        | {"M10", "M49"}
        | {"P01", "P03", "P04", "P05", "P07", "P08", "P22", "P23"}
    ),
    # AP cancelled recurring, AW altered amount, CD credit/debit posted incorrectly, DP duplicate
    # processing, IC illegible sales data, LP late presentation, NA no authorisation, NF non-receipt,
    # PM paid by other means, RG non-receipt of goods, RM quality, RN2 credit not received
    "discover": frozenset(
        {"AP", "AW", "CD", "DP", "DP1", "EX", "IC", "IN", "LP", "NA", "NF", "PM", "RG", "RM", "RN2"}
    ),
}


def _all(codes: dict[str, frozenset[str]]) -> frozenset[str]:
    return frozenset().union(*codes.values())


FRAUD_CODES = _all(FRAUD_REASON_CODES)
NON_FRAUD_CODES = _all(NON_FRAUD_REASON_CODES)

FRAUD, NON_FRAUD = "fraud", "non_fraud"


def normalise(code: str | None) -> str | None:
    """The form codes are compared in: trimmed, upper case; None when empty."""
    code = (code or "").strip().upper()
    return code or None


def classify(code: str | None) -> str | None:
    """`fraud`, `non_fraud`, or None (missing or unknown code), as `classify_sql` says in SQL."""
    code = normalise(code)
    return FRAUD if code in FRAUD_CODES else NON_FRAUD if code in NON_FRAUD_CODES else None


def _sql_list(codes: Iterable[str]) -> str:
    return ", ".join(f"'{c}'" for c in sorted(codes))


def classify_sql(column: str) -> str:
    """SQL: `'fraud'`, `'non_fraud'` or NULL (missing or unknown) for the reason code in `column`."""
    code = f"upper(trim({column}))"
    return (
        f"CASE WHEN {code} IN ({_sql_list(FRAUD_CODES)}) THEN '{FRAUD}' "
        f"WHEN {code} IN ({_sql_list(NON_FRAUD_CODES)}) THEN '{NON_FRAUD}' END"
    )
