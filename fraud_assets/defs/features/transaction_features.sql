-- features.transaction_features: one row per cleaned transaction of the output business dates.
--
-- Window semantics, stated once (t = the transaction's tx_datetime, UTC, microsecond precision):
--   * card windows "n"          : the card's transactions with timestamp in (t - n, t].
--       RANGE BETWEEN (n - 1 µs) PRECEDING AND CURRENT ROW. Timestamps are whole microseconds, so
--       "> t - n" is ">= t - n + 1 µs". CURRENT ROW in RANGE mode includes every peer at exactly t.
--   * delayed windows "n", d = 7: the transactions with timestamp in (t - d - n, t - d].
--       RANGE BETWEEN (d + n - 1 µs) PRECEDING AND d PRECEDING.
--   * a fraud label counts at t iff reported_at <= t (cleaned.labels, earliest report).
--       Known frauds in a delayed window = count of labels j with t-d-n < s_j <= t-d and r_j <= t
--                                        = count(e_j <= t) - count(f_j <= t)
--       with e_j = max(s_j + d, r_j) (the label enters) and f_j = max(s_j + d + n, r_j) (it leaves).
--       Both are running sums over a stream of label events merged into the transactions' sort,
--       so the whole terminal block is ONE sort and one streaming pass, not a join per row.
--   * "previous transaction" of the card = the latest one strictly before t, within 30 days.
--
-- Cost shape: one sort per entity (card, terminal), every card feature computed in the card sort,
-- every terminal feature in the terminal sort; cards are partitioned by a dense integer id, not by
-- their 64-character token (sorting on the token is several times slower).
--       A label whose transaction lies outside (t-d-n, t-d] contributes +1 -1 or 0 + 0, so feeding
--       every label of the read range is exact.
--
-- Incremental reads: output rows have t in [{out_from}, {out_to}); card windows need 30 days
-- ({card_from}), delayed windows 30 + 7 days ({read_from}), the undelayed 28-day known-fraud count
-- 28 days; labels known by {out_to}.
-- Placeholders are ISO dates/timestamps produced by compute.py from validated partition keys.
WITH card_ids AS (
    SELECT card_token, row_number() OVER () AS card_id
    FROM (SELECT DISTINCT card_token FROM cleaned.transactions
          WHERE business_date BETWEEN DATE '{read_from_date}' AND DATE '{out_last_date}')
),

tx AS (
    SELECT
        t.transaction_id, t.business_date, t.tx_datetime, t.tx_datetime_local, t.card_token, k.card_id,
        t.terminal_id, t.tx_amount, t.channel, t.three_ds,
        coalesce(m.mcc, 'unknown') AS mcc, m.x AS terminal_x, m.y AS terminal_y, c.home_x, c.home_y
    FROM cleaned.transactions AS t
    JOIN card_ids AS k ON k.card_token = t.card_token
    LEFT JOIN cleaned.terminals AS m ON m.terminal_id = t.terminal_id
    LEFT JOIN cleaned.cards AS c ON c.card_token = t.card_token
    WHERE t.business_date BETWEEN DATE '{read_from_date}' AND DATE '{out_last_date}'
      AND t.tx_datetime >= TIMESTAMP '{read_from}' AND t.tx_datetime < TIMESTAMP '{out_to}'
),

labels AS (
    -- Labels known by the end of the last output day, for transactions of the read range.
    SELECT tx.terminal_id, tx.mcc, tx.tx_datetime AS s, l.reported_at AS r
    FROM tx JOIN cleaned.labels AS l ON l.transaction_id = tx.transaction_id
    WHERE l.reported_at < TIMESTAMP '{out_to}'
),

card_windows AS (
    SELECT
        * EXCLUDE (card_id),
        count(*) OVER c1h AS card_nb_tx_1h,
        count(*) OVER c6h AS card_nb_tx_6h,
        count(*) OVER c1d AS card_nb_tx_1d,
        count(*) OVER c7d AS card_nb_tx_7d,
        count(*) OVER c30d AS card_nb_tx_30d,
        sum(tx_amount) OVER c1d AS sum_1d,
        sum(tx_amount) OVER c7d AS sum_7d,
        sum(tx_amount) OVER c30d AS sum_30d,
        sum(tx_amount * tx_amount) OVER c30d AS sumsq_30d,
        count(DISTINCT terminal_id) OVER c1d AS card_nb_terminals_1d,
        count(DISTINCT terminal_id) OVER c7d AS card_nb_terminals_7d,
        -- one struct, one window expression (each window expression costs a pass)
        last_value({{'t': tx_datetime, 'x': terminal_x, 'y': terminal_y}}) OVER before_t AS prev
    FROM tx
    WHERE tx_datetime >= TIMESTAMP '{card_from}'
    WINDOW
        c AS (PARTITION BY card_id ORDER BY tx_datetime),
        c1h AS (c RANGE BETWEEN INTERVAL (3600000000 - 1) MICROSECOND PRECEDING AND CURRENT ROW),
        c6h AS (c RANGE BETWEEN INTERVAL (21600000000 - 1) MICROSECOND PRECEDING AND CURRENT ROW),
        c1d AS (c RANGE BETWEEN INTERVAL (86400000000 - 1) MICROSECOND PRECEDING AND CURRENT ROW),
        c7d AS (c RANGE BETWEEN INTERVAL (7 * 86400000000 - 1) MICROSECOND PRECEDING AND CURRENT ROW),
        c30d AS (c RANGE BETWEEN INTERVAL (30 * 86400000000 - 1) MICROSECOND PRECEDING AND CURRENT ROW),
        before_t AS (c RANGE BETWEEN UNBOUNDED PRECEDING AND INTERVAL 1 MICROSECOND PRECEDING)
),

card AS (
    -- Output rows with the card features; the previous-30-day statistics exclude the current row.
    SELECT
        *,
        card_nb_tx_30d - 1 AS n_prev,
        sum_30d - tx_amount AS sum_prev,
        (sumsq_30d - tx_amount * tx_amount
            - (sum_30d - tx_amount) * (sum_30d - tx_amount) / nullif(card_nb_tx_30d - 1, 0))
            / nullif(card_nb_tx_30d - 2, 0) AS var_prev,
        CASE WHEN prev.t >= tx_datetime - INTERVAL 30 DAY THEN epoch(tx_datetime - prev.t) END AS gap_prev
    FROM card_windows
    WHERE tx_datetime >= TIMESTAMP '{out_from}' AND business_date IN ({output_dates})
),

terminal_stream AS (
    -- Transactions and label events (+1 enter at e_j, +1 leave at f_j per window) per terminal.
    -- recent_7d / recent_28d carry the +1 / -1 events of the undelayed known-fraud counts (below).
    SELECT terminal_id, tx_datetime AS ts, transaction_id, 0 AS enter, 0 AS leave_1d, 0 AS leave_7d,
           0 AS leave_30d, 0 AS recent_7d, 0 AS recent_28d
    FROM tx
    UNION ALL
    SELECT terminal_id, greatest(s + INTERVAL 7 DAY, r), NULL, 1, 0, 0, 0, 0, 0 FROM labels
    UNION ALL
    SELECT terminal_id, greatest(s + INTERVAL 8 DAY, r), NULL, 0, 1, 0, 0, 0, 0 FROM labels
    UNION ALL
    SELECT terminal_id, greatest(s + INTERVAL 14 DAY, r), NULL, 0, 0, 1, 0, 0, 0 FROM labels
    UNION ALL
    SELECT terminal_id, greatest(s + INTERVAL 37 DAY, r), NULL, 0, 0, 0, 1, 0, 0 FROM labels
    UNION ALL
    -- Undelayed known frauds "n" = labels j with t - n < s_j < t and r_j <= t: the label enters at
    -- max(s_j + 1 µs, r_j) (strictly after its own transaction, so a row never sees its own label)
    -- and leaves at max(s_j + n, r_j).
    SELECT terminal_id, greatest(s + INTERVAL 1 MICROSECOND, r), NULL, 0, 0, 0, 0, 1, 1 FROM labels
    UNION ALL
    SELECT terminal_id, greatest(s + INTERVAL 7 DAY, r), NULL, 0, 0, 0, 0, -1, 0 FROM labels
    UNION ALL
    SELECT terminal_id, greatest(s + INTERVAL 28 DAY, r), NULL, 0, 0, 0, 0, 0, -1 FROM labels
),

terminal AS (
    SELECT * FROM (
        SELECT
            transaction_id, ts,
            -- count(transaction_id) skips the event rows (their transaction_id is NULL)
            count(transaction_id) OVER d1 AS terminal_nb_tx_1d,
            count(transaction_id) OVER d7 AS terminal_nb_tx_7d,
            count(transaction_id) OVER d30 AS terminal_nb_tx_30d,
            sum(enter - leave_1d) OVER upto_t AS known_fraud_1d,
            sum(enter - leave_7d) OVER upto_t AS known_fraud_7d,
            sum(enter - leave_30d) OVER upto_t AS known_fraud_30d,
            sum(recent_7d) OVER upto_t AS terminal_known_fraud_7d,
            sum(recent_28d) OVER upto_t AS terminal_known_fraud_28d
        FROM terminal_stream
        WINDOW
            w AS (PARTITION BY terminal_id ORDER BY ts),
            upto_t AS (w RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
            d1 AS (w RANGE BETWEEN INTERVAL (8 * 86400000000 - 1) MICROSECOND PRECEDING
                           AND INTERVAL 7 DAY PRECEDING),
            d7 AS (w RANGE BETWEEN INTERVAL (14 * 86400000000 - 1) MICROSECOND PRECEDING
                           AND INTERVAL 7 DAY PRECEDING),
            d30 AS (w RANGE BETWEEN INTERVAL (37 * 86400000000 - 1) MICROSECOND PRECEDING
                            AND INTERVAL 7 DAY PRECEDING)
    )
    WHERE transaction_id IS NOT NULL AND ts >= TIMESTAMP '{out_from}'
),

out_days AS (
    SELECT unnest([{output_dates}]) AS business_date
),

-- Merchant-category risk is a daily snapshot: for output day D, the category's transactions of the
-- 30 business days [D - 37, D - 8] (UTC), and the share of them with a label reported before D 00:00.
-- Known at the start of D, so at every t of D: point-in-time correct, and a few thousand rows of
-- work instead of a window over partitions of hundreds of thousands of rows.
mcc_days AS (
    SELECT mcc, business_date AS day, count(*) AS n FROM tx GROUP BY ALL
),

mcc_label_days AS (
    SELECT mcc, CAST(s AS DATE) AS day, CAST(r AS DATE) AS reported_day, count(*) AS n FROM labels GROUP BY ALL
),

mcc_counts AS (
    SELECT o.business_date, m.mcc, sum(m.n) AS mcc_nb_tx_30d
    FROM out_days AS o JOIN mcc_days AS m ON m.day BETWEEN o.business_date - 37 AND o.business_date - 8
    GROUP BY ALL
),

mcc_known AS (
    SELECT o.business_date, l.mcc, sum(l.n) AS known
    FROM out_days AS o JOIN mcc_label_days AS l
        ON l.day BETWEEN o.business_date - 37 AND o.business_date - 8 AND l.reported_day < o.business_date
    GROUP BY ALL
),

merchant_category AS (
    SELECT c.business_date, c.mcc, c.mcc_nb_tx_30d, coalesce(k.known, 0) AS mcc_known_fraud_30d
    FROM mcc_counts AS c LEFT JOIN mcc_known AS k ON k.business_date = c.business_date AND k.mcc = c.mcc
)

SELECT
    card.transaction_id,
    card.business_date,
    card.tx_datetime,
    card.card_token,
    card.terminal_id,
    -- handbook baseline
    card.tx_amount,
    CAST(dayofweek(card.tx_datetime_local) IN (0, 6) AS INTEGER) AS is_weekend,
    CAST(hour(card.tx_datetime_local) <= 6 AS INTEGER) AS is_night,
    card.card_nb_tx_1d,
    card.sum_1d / card.card_nb_tx_1d AS card_avg_amount_1d,
    card.card_nb_tx_7d,
    card.sum_7d / card.card_nb_tx_7d AS card_avg_amount_7d,
    card.card_nb_tx_30d,
    card.sum_30d / card.card_nb_tx_30d AS card_avg_amount_30d,
    terminal.terminal_nb_tx_1d,
    CASE WHEN terminal.terminal_nb_tx_1d > 0
         THEN terminal.known_fraud_1d / terminal.terminal_nb_tx_1d ELSE 0.0 END
        AS terminal_risk_1d,
    terminal.terminal_nb_tx_7d,
    CASE WHEN terminal.terminal_nb_tx_7d > 0
         THEN terminal.known_fraud_7d / terminal.terminal_nb_tx_7d ELSE 0.0 END
        AS terminal_risk_7d,
    terminal.terminal_nb_tx_30d,
    CASE WHEN terminal.terminal_nb_tx_30d > 0
         THEN terminal.known_fraud_30d / terminal.terminal_nb_tx_30d ELSE 0.0 END
        AS terminal_risk_30d,
    -- production features (docs/features.md)
    CAST(terminal.terminal_known_fraud_7d AS BIGINT) AS terminal_known_fraud_7d,
    CAST(terminal.terminal_known_fraud_28d AS BIGINT) AS terminal_known_fraud_28d,
    CASE WHEN card.n_prev > 0 AND card.sum_prev > 0 THEN card.tx_amount / (card.sum_prev / card.n_prev)
         ELSE 1.0 END AS card_amount_ratio_30d,
    -- clipped: a card with near-constant amounts would otherwise give z-scores in the hundreds
    CASE WHEN card.n_prev >= 2 AND card.var_prev > 1e-6
         THEN least(greatest((card.tx_amount - card.sum_prev / card.n_prev) / sqrt(card.var_prev), -20.0), 20.0)
         ELSE 0.0 END AS card_amount_zscore_30d,
    coalesce(card.gap_prev, 30 * 86400.0) AS card_secs_since_prev_tx,
    card.card_nb_tx_1h,
    card.card_nb_tx_6h,
    card.card_nb_terminals_1d,
    card.card_nb_terminals_7d,
    sqrt((card.home_x - card.terminal_x) ** 2 + (card.home_y - card.terminal_y) ** 2) AS dist_home_terminal,
    CASE WHEN card.gap_prev IS NOT NULL
         THEN sqrt((card.terminal_x - card.prev.x) ** 2 + (card.terminal_y - card.prev.y) ** 2)
         ELSE 0.0 END AS dist_prev_terminal,
    CAST(coalesce(merchant_category.mcc_nb_tx_30d, 0) AS BIGINT) AS mcc_nb_tx_30d,
    CASE WHEN merchant_category.mcc_nb_tx_30d > 0
         THEN merchant_category.mcc_known_fraud_30d / merchant_category.mcc_nb_tx_30d ELSE 0.0 END
        AS mcc_risk_30d,
    CAST(coalesce(card.channel = 'ecommerce', false) AS INTEGER) AS is_ecommerce,
    CAST(coalesce(card.three_ds = 'N', false) AS INTEGER) AS three_ds_failed,
    CAST(coalesce(card.channel = 'ecommerce' AND coalesce(card.three_ds, '') NOT IN ('Y', 'A', 'N'), false)
         AS INTEGER) AS ecommerce_without_3ds
FROM card
JOIN terminal ON terminal.transaction_id = card.transaction_id
LEFT JOIN merchant_category
    ON merchant_category.business_date = card.business_date AND merchant_category.mcc = card.mcc
