-- The naive recomputation behind the `features_sampled_naive_recompute` check.
--
-- For a random sample of feature rows, recompute features straight from their definitions, with
-- plain joins and filters and no window functions: every card transaction in (t - 30d, t], every
-- terminal transaction in (t - 37d, t - 7d] with its label, in (t - 28d, t) for the undelayed counts and
-- every labelled terminal or card transaction in (t - 60d, t) for the episodes, then filtered aggregates.
-- Slow per row, independent of transaction_features.sql, so the two agree only if both follow the
-- definitions.
-- The sample comes from the business dates the run wrote ({{written}}); x is cleaned.transactions from the
-- earliest window start of those dates ({{read_from}}) to their last day ({{read_to}}).
WITH s AS (
    SELECT s.*, hour(coalesce(c.tx_datetime_local, c.tx_datetime)) // 4 AS hour_band
    FROM (
        SELECT transaction_id, tx_datetime AS t, card_token, terminal_id, tx_amount
        FROM (SELECT * FROM features.transaction_features WHERE {written})
        USING SAMPLE reservoir({sample_rows} ROWS) REPEATABLE ({seed})
    ) AS s
    JOIN cleaned.transactions AS c USING (transaction_id)
),

x AS (
    SELECT * FROM cleaned.transactions
    WHERE business_date BETWEEN DATE '{read_from}' AND DATE '{read_to}'
),

card AS (
    SELECT
        s.transaction_id,
        count(*) FILTER (WHERE x.tx_datetime > s.t - INTERVAL 1 DAY) AS card_nb_tx_1d,
        avg(x.tx_amount) FILTER (WHERE x.tx_datetime > s.t - INTERVAL 1 DAY) AS card_avg_amount_1d,
        count(*) FILTER (WHERE x.tx_datetime > s.t - INTERVAL 7 DAY) AS card_nb_tx_7d,
        avg(x.tx_amount) FILTER (WHERE x.tx_datetime > s.t - INTERVAL 7 DAY) AS card_avg_amount_7d,
        count(*) AS card_nb_tx_30d,
        avg(x.tx_amount) AS card_avg_amount_30d,
        count(*) FILTER (WHERE x.tx_datetime > s.t - INTERVAL 1 HOUR) AS card_nb_tx_1h,
        count(*) FILTER (WHERE x.tx_datetime > s.t - INTERVAL 6 HOUR) AS card_nb_tx_6h,
        count(DISTINCT x.terminal_id) FILTER (WHERE x.tx_datetime > s.t - INTERVAL 1 DAY) AS card_nb_terminals_1d,
        count(DISTINCT x.terminal_id) FILTER (WHERE x.tx_datetime > s.t - INTERVAL 7 DAY) AS card_nb_terminals_7d,
        coalesce(epoch(s.t - max(x.tx_datetime) FILTER (WHERE x.tx_datetime < s.t)), 30 * 86400.0)
            AS card_secs_since_prev_tx,
        CASE WHEN count(*) > 1 AND sum(x.tx_amount) - any_value(s.tx_amount) > 0
             THEN any_value(s.tx_amount) / ((sum(x.tx_amount) - any_value(s.tx_amount)) / (count(*) - 1))
             ELSE 1.0 END AS card_amount_ratio_30d,
        coalesce(any_value(s.tx_amount) / max(x.tx_amount) FILTER (WHERE x.tx_datetime < s.t), 1.0)
            AS card_amount_ratio_max_30d,
        coalesce(any_value(s.tx_amount) / avg(x.tx_amount) FILTER (WHERE x.tx_datetime <= s.t - INTERVAL 7 DAY), 1.0)
            AS card_amount_ratio_older_30d,
        count(*) FILTER (WHERE x.terminal_id = s.terminal_id) AS card_terminal_nb_tx_30d,
        count(*) FILTER (WHERE hour(coalesce(x.tx_datetime_local, x.tx_datetime)) // 4 = s.hour_band) / count(*)
            AS card_hour_band_share_30d
    FROM s
    JOIN x
        ON x.card_token = s.card_token AND x.tx_datetime > s.t - INTERVAL 30 DAY AND x.tx_datetime <= s.t
    GROUP BY s.transaction_id, s.t
),

terminal AS (
    SELECT
        s.transaction_id,
        count(x.transaction_id) FILTER (WHERE x.tx_datetime > s.t - INTERVAL 8 DAY) AS terminal_nb_tx_1d,
        count(l.transaction_id) FILTER (WHERE x.tx_datetime > s.t - INTERVAL 8 DAY AND l.reported_at <= s.t)
            AS fraud_1d,
        count(x.transaction_id) FILTER (WHERE x.tx_datetime > s.t - INTERVAL 14 DAY) AS terminal_nb_tx_7d,
        count(l.transaction_id) FILTER (WHERE x.tx_datetime > s.t - INTERVAL 14 DAY AND l.reported_at <= s.t)
            AS fraud_7d,
        count(x.transaction_id) FILTER (WHERE x.tx_datetime > s.t - INTERVAL 21 DAY) AS terminal_nb_tx_14d,
        count(l.transaction_id) FILTER (WHERE x.tx_datetime > s.t - INTERVAL 21 DAY AND l.reported_at <= s.t)
            AS fraud_14d,
        count(x.transaction_id) AS terminal_nb_tx_30d,
        count(l.transaction_id) FILTER (WHERE l.reported_at <= s.t) AS fraud_30d
    FROM s
    LEFT JOIN x
        ON x.terminal_id = s.terminal_id
        AND x.tx_datetime > s.t - INTERVAL 37 DAY AND x.tx_datetime <= s.t - INTERVAL 7 DAY
    LEFT JOIN cleaned.labels AS l ON l.transaction_id = x.transaction_id
    GROUP BY s.transaction_id
),

terminal_recent AS (
    -- Undelayed: the terminal's transactions in (t - n, t) whose label was reported by t.
    SELECT
        s.transaction_id,
        count(x.transaction_id) FILTER (WHERE x.tx_datetime > s.t - INTERVAL 7 DAY) AS terminal_known_fraud_7d,
        count(x.transaction_id) AS terminal_known_fraud_28d
    FROM s
    LEFT JOIN (x JOIN cleaned.labels AS l ON l.transaction_id = x.transaction_id)
        ON x.terminal_id = s.terminal_id AND x.tx_datetime > s.t - INTERVAL 28 DAY AND x.tx_datetime < s.t
        AND l.reported_at <= s.t
    GROUP BY s.transaction_id
),

terminal_episode AS (
    -- The terminal's transactions in (t - 60d, t) whose label was reported by t.
    SELECT
        s.transaction_id,
        count(x.transaction_id) AS terminal_known_fraud_60d,
        coalesce(epoch(s.t - min(x.tx_datetime)) / 86400, 60.0) AS terminal_days_since_first_fraud_60d,
        coalesce(epoch(s.t - max(x.tx_datetime)) / 86400, 60.0) AS terminal_days_since_last_fraud_60d
    FROM s
    LEFT JOIN (x JOIN cleaned.labels AS l ON l.transaction_id = x.transaction_id)
        ON x.terminal_id = s.terminal_id AND x.tx_datetime > s.t - INTERVAL 60 DAY AND x.tx_datetime < s.t
        AND l.reported_at <= s.t
    GROUP BY s.transaction_id, s.t
),

card_episode AS (
    SELECT s.transaction_id, count(x.transaction_id) AS card_known_fraud_60d
    FROM s
    LEFT JOIN (x JOIN cleaned.labels AS l ON l.transaction_id = x.transaction_id)
        ON x.card_token = s.card_token AND x.tx_datetime > s.t - INTERVAL 60 DAY AND x.tx_datetime < s.t
        AND l.reported_at <= s.t
    GROUP BY s.transaction_id
)

SELECT
    card.*,
    terminal.terminal_nb_tx_1d,
    CASE WHEN terminal_nb_tx_1d > 0 THEN fraud_1d / terminal_nb_tx_1d ELSE 0.0 END AS terminal_risk_1d,
    terminal.terminal_nb_tx_7d,
    CASE WHEN terminal_nb_tx_7d > 0 THEN fraud_7d / terminal_nb_tx_7d ELSE 0.0 END AS terminal_risk_7d,
    terminal.terminal_nb_tx_14d,
    CASE WHEN terminal_nb_tx_14d > 0 THEN fraud_14d / terminal_nb_tx_14d ELSE 0.0 END AS terminal_risk_14d,
    terminal.terminal_nb_tx_30d,
    CASE WHEN terminal_nb_tx_30d > 0 THEN fraud_30d / terminal_nb_tx_30d ELSE 0.0 END AS terminal_risk_30d,
    terminal_recent.terminal_known_fraud_7d,
    terminal_recent.terminal_known_fraud_28d,
    terminal_episode.* EXCLUDE (transaction_id),
    card_episode.card_known_fraud_60d
FROM card JOIN terminal USING (transaction_id) JOIN terminal_recent USING (transaction_id)
JOIN terminal_episode USING (transaction_id) JOIN card_episode USING (transaction_id)
ORDER BY transaction_id
