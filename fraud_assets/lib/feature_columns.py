"""The key columns and the 15 handbook baseline features of features.transaction_features: the contract
between the feature layer, which writes them, and model selection and monitoring, which read them."""

ID_COLUMNS = ("transaction_id", "business_date", "tx_datetime", "card_token", "terminal_id")
BASELINE_COLUMNS = (
    "tx_amount",
    "is_weekend",
    "is_night",
    "card_nb_tx_1d",
    "card_avg_amount_1d",
    "card_nb_tx_7d",
    "card_avg_amount_7d",
    "card_nb_tx_30d",
    "card_avg_amount_30d",
    "terminal_nb_tx_1d",
    "terminal_risk_1d",
    "terminal_nb_tx_7d",
    "terminal_risk_7d",
    "terminal_nb_tx_30d",
    "terminal_risk_30d",
)
