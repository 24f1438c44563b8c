"""Which columns of the cleaned layer each column of features.transaction_features is computed from
(`dagster/column_lineage`), following feature_inputs.sql and windows.py: card windows group by
card_token over tx_datetime, terminal windows by terminal_id, risk counts the labels reported by t."""

from fraud_assets.lib.catalog_metadata import column_lineage

TX = "cleaned/transactions"
LABELS = "cleaned/labels"
CARDS = "cleaned/cards"
TERMINALS = "cleaned/terminals"

_CARD_WINDOW = [(TX, "card_token"), (TX, "tx_datetime")]
_TERMINAL_WINDOW = [(TX, "terminal_id"), (TX, "tx_datetime")]
_KNOWN_FRAUD = [(LABELS, "transaction_id"), (LABELS, "reported_at")]
_WINDOWS = ("1d", "7d", "30d")
_DELAYED_WINDOWS = ("1d", "7d", "14d", "30d")

COLUMN_LINEAGE = column_lineage(
    {
        **{
            c: [(TX, c)]
            for c in ("transaction_id", "business_date", "tx_datetime", "card_token", "terminal_id")
        },
        "tx_amount": [(TX, "tx_amount")],
        "is_weekend": [(TX, "tx_datetime_local")],
        "is_night": [(TX, "tx_datetime_local")],
        **{f"card_nb_tx_{w}": _CARD_WINDOW for w in (*_WINDOWS, "1h", "6h")},
        **{f"card_avg_amount_{w}": [*_CARD_WINDOW, (TX, "tx_amount")] for w in _WINDOWS},
        **{f"terminal_nb_tx_{w}": _TERMINAL_WINDOW for w in _DELAYED_WINDOWS},
        **{f"terminal_risk_{w}": [*_TERMINAL_WINDOW, *_KNOWN_FRAUD] for w in _DELAYED_WINDOWS},
        **{f"terminal_known_fraud_{w}": [*_TERMINAL_WINDOW, *_KNOWN_FRAUD] for w in ("7d", "28d", "60d")},
        **{
            f"terminal_days_since_{end}_fraud_60d": [*_TERMINAL_WINDOW, *_KNOWN_FRAUD]
            for end in ("first", "last")
        },
        "card_known_fraud_60d": [*_CARD_WINDOW, *_KNOWN_FRAUD],
        "card_amount_ratio_30d": [*_CARD_WINDOW, (TX, "tx_amount")],
        "card_amount_zscore_30d": [*_CARD_WINDOW, (TX, "tx_amount")],
        "card_secs_since_prev_tx": _CARD_WINDOW,
        **{f"card_nb_terminals_{w}": [*_CARD_WINDOW, (TX, "terminal_id")] for w in ("1d", "7d")},
        "card_amount_ratio_max_30d": [*_CARD_WINDOW, (TX, "tx_amount")],
        "card_amount_ratio_older_30d": [*_CARD_WINDOW, (TX, "tx_amount")],
        "card_terminal_nb_tx_30d": [*_CARD_WINDOW, (TX, "terminal_id")],
        "card_hour_band_share_30d": [*_CARD_WINDOW, (TX, "tx_datetime_local")],
        "dist_home_terminal": [(CARDS, "home_x"), (CARDS, "home_y"), (TERMINALS, "x"), (TERMINALS, "y")],
        "dist_prev_terminal": [*_CARD_WINDOW, (TX, "terminal_id"), (TERMINALS, "x"), (TERMINALS, "y")],
        "mcc_nb_tx_30d": [(TX, "terminal_id"), (TX, "business_date"), (TERMINALS, "mcc")],
        "mcc_risk_30d": [(TX, "terminal_id"), (TX, "business_date"), (TERMINALS, "mcc"), *_KNOWN_FRAUD],
        "is_ecommerce": [(TX, "channel")],
        "three_ds_failed": [(TX, "three_ds")],
        "ecommerce_without_3ds": [(TX, "channel"), (TX, "three_ds")],
    }
)
