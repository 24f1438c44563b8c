-- features.transaction_features: one row per cleaned transaction of the output business dates.
--
-- Window semantics, stated once (t = the transaction's tx_datetime, UTC, as integer microseconds `us`):
--   * card windows "n"          : the card's transactions with timestamp in (t - n, t].
--       RANGE BETWEEN (n - 1) PRECEDING AND CURRENT ROW over `us`. Timestamps are whole microseconds,
--       so "> t - n" is ">= t - n + 1". CURRENT ROW in RANGE mode includes every peer at exactly t.
--       Ordering on a BIGINT instead of a TIMESTAMP makes every frame bound plain integer arithmetic.
--   * delayed windows "n", d = 7: the transactions with timestamp in (t - d - n, t - d].
--       RANGE BETWEEN (d + n - 1) PRECEDING AND d PRECEDING.
--   * a fraud label counts at t iff reported_at <= t (cleaned.labels, earliest report).
--       Known frauds in a delayed window = count of labels j with t-d-n < s_j <= t-d and r_j <= t
--                                        = count(e_j <= t) - count(f_j <= t)
--       with e_j = max(s_j + d, r_j) (the label enters) and f_j = max(s_j + d + n, r_j) (it leaves).
--       Both are running sums over a stream of label events merged into the terminal sort. A label whose
--       transaction lies outside (t-d-n, t-d] contributes +1 -1 or 0 + 0, so feeding every label of the
--       read range is exact.
--   * "previous transaction" of the card = the latest one strictly before t, within 30 days.
--
-- Cost shape (see docs/features.md, "How it is computed"): three sorts of the narrow transaction rows,
-- chained so that no wide join is needed: terminal (with the label events), (card, terminal) pairs, card.
-- Every window aggregate is a segment tree, so aggregates over the SAME frame are packed into one
-- integer sum and decoded afterwards (exact integer arithmetic, fields never negative):
--   * terminal: the five known-fraud counters share one running HUGEINT sum, 24 bits each.
--   * card 1d / 7d: amount (fixed point, 2^-50 EUR) in bits 0-86, count in 87-106, and the
--     distinct-terminal term in 107-126; card 30d: amount in 0-99, count in 100-126. The 30d fields
--     bound the others: a card with >= 2^20 transactions or >= 2^37 EUR in 30 days, or an output row
--     with a negative amount (cleaned requires > 0), raises an error instead of overflowing silently. Fixed point makes the window sums exact
--     sums of the amounts rounded to 2^-50 (< 1e-15 EUR), never a difference of large floats.
--   * distinct terminals of the card in (t - n, t] without a DISTINCT aggregate: with prev/next the
--     card's previous/next transaction at the same terminal (pairs, one lag/lead pass),
--       distinct_n(t) = sum over (t-n, t] of [next - s >= n or no next]
--                     + sum over s <= t of ([next - s < n] - [s - prev < n])
--     Each terminal of the window counts once, at its last visit up to t: its next visit is n or more
--     later (first term), or within n but after t, a pair still open at t (second term: pairs opened
--     minus pairs closed by t). The future next visits cancel: the total depends only on rows <= t.
--
-- Incremental reads: output rows have t in [{out_from}, {out_to}); card windows need 30 days
-- ({card_from}), delayed windows 30 + 7 days ({read_from}), the undelayed 28-day known-fraud count
-- 28 days; labels known by {out_to}.
-- Placeholders are ISO dates/timestamps produced by compute.py from validated partition keys.
WITH card_ids AS (
    -- a dense integer per card: sorting on the 64-character token is several times slower
    SELECT card_token, row_number() OVER () AS card_id
    FROM (SELECT DISTINCT card_token FROM cleaned.transactions
          WHERE business_date BETWEEN DATE '{read_from_date}' AND DATE '{out_last_date}')
),

tx AS (
    -- Narrow rows: everything the windows carry is a number (the per-row flags and the home distance are
    -- computed here, the card token is joined back once at the end from card_ids).
    SELECT
        t.transaction_id, t.business_date, epoch_us(t.tx_datetime) AS us, k.card_id, t.terminal_id, t.tx_amount,
        coalesce(m.mcc, 'unknown') AS mcc, m.x AS terminal_x, m.y AS terminal_y,
        CAST(dayofweek(t.tx_datetime_local) IN (0, 6) AS INTEGER) AS is_weekend,
        CAST(hour(t.tx_datetime_local) <= 6 AS INTEGER) AS is_night,
        sqrt((h.home_x - m.x) ** 2 + (h.home_y - m.y) ** 2) AS dist_home_terminal,
        CAST(coalesce(t.channel = 'ecommerce', false) AS INTEGER) AS is_ecommerce,
        CAST(coalesce(t.three_ds = 'N', false) AS INTEGER) AS three_ds_failed,
        CAST(coalesce(t.channel = 'ecommerce' AND coalesce(t.three_ds, '') NOT IN ('Y', 'A', 'N'), false)
             AS INTEGER) AS ecommerce_without_3ds
    FROM cleaned.transactions AS t
    JOIN card_ids AS k ON k.card_token = t.card_token
    LEFT JOIN cleaned.terminals AS m ON m.terminal_id = t.terminal_id
    LEFT JOIN cleaned.cards AS h ON h.card_token = t.card_token
    WHERE t.business_date BETWEEN DATE '{read_from_date}' AND DATE '{out_last_date}'
      AND t.tx_datetime >= TIMESTAMP '{read_from}' AND t.tx_datetime < TIMESTAMP '{out_to}'
),

labels AS (
    -- Labels known by the end of the last output day, for transactions of the read range.
    SELECT tx.terminal_id, tx.mcc, tx.us AS s, epoch_us(l.reported_at) AS r,
           tx.business_date AS day, CAST(l.reported_at AS DATE) AS reported_day
    FROM tx JOIN cleaned.labels AS l ON l.transaction_id = tx.transaction_id
    WHERE l.reported_at < TIMESTAMP '{out_to}'
),

terminal_events AS (
    -- Label events packed for one running sum, 24 bits per counter: bits 0 / 24 / 48 = known frauds of
    -- the delayed 1d / 7d / 30d windows (enter at e_j, leave at f_j); bits 72 / 96 = undelayed known
    -- frauds "n" = labels j with t - n < s_j < t and r_j <= t: enter at max(s_j + 1 µs, r_j) (strictly
    -- after its own transaction, so a row never sees its own label), leave at max(s_j + n, r_j).
    SELECT terminal_id, greatest(s + 7 * 86400000000, r) AS us,
           1 + (CAST(1 AS HUGEINT) << 24) + (CAST(1 AS HUGEINT) << 48) AS ev FROM labels
    UNION ALL
    SELECT terminal_id, greatest(s + 8 * 86400000000, r), -1 FROM labels
    UNION ALL
    SELECT terminal_id, greatest(s + 14 * 86400000000, r), -(CAST(1 AS HUGEINT) << 24) FROM labels
    UNION ALL
    SELECT terminal_id, greatest(s + 37 * 86400000000, r), -(CAST(1 AS HUGEINT) << 48) FROM labels
    UNION ALL
    SELECT terminal_id, greatest(s + 1, r), (CAST(1 AS HUGEINT) << 72) + (CAST(1 AS HUGEINT) << 96) FROM labels
    UNION ALL
    SELECT terminal_id, greatest(s + 7 * 86400000000, r), -(CAST(1 AS HUGEINT) << 72) FROM labels
    UNION ALL
    SELECT terminal_id, greatest(s + 28 * 86400000000, r), -(CAST(1 AS HUGEINT) << 96) FROM labels
),

terminal_stream AS (
    -- transactions (ev = 0) and label events (transaction_id NULL) in one terminal sort
    SELECT *, CAST(0 AS HUGEINT) AS ev FROM tx
    UNION ALL BY NAME
    SELECT terminal_id, us, ev FROM terminal_events
),

terminal AS (
    SELECT
        * EXCLUDE (ev, known),
        CAST(known & 16777215 AS BIGINT) AS known_fraud_1d,
        CAST((known >> 24) & 16777215 AS BIGINT) AS known_fraud_7d,
        CAST((known >> 48) & 16777215 AS BIGINT) AS known_fraud_30d,
        CAST((known >> 72) & 16777215 AS BIGINT) AS terminal_known_fraud_7d,
        CAST((known >> 96) & 16777215 AS BIGINT) AS terminal_known_fraud_28d
    FROM (
        SELECT
            *,
            -- count(transaction_id) skips the event rows
            count(transaction_id) OVER d1 AS terminal_nb_tx_1d,
            count(transaction_id) OVER d7 AS terminal_nb_tx_7d,
            count(transaction_id) OVER d30 AS terminal_nb_tx_30d,
            sum(ev) OVER (w RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS known
        FROM terminal_stream
        WINDOW
            w AS (PARTITION BY terminal_id ORDER BY us),
            d1 AS (w RANGE BETWEEN 8 * 86400000000 - 1 PRECEDING AND 7 * 86400000000 PRECEDING),
            d7 AS (w RANGE BETWEEN 14 * 86400000000 - 1 PRECEDING AND 7 * 86400000000 PRECEDING),
            d30 AS (w RANGE BETWEEN 37 * 86400000000 - 1 PRECEDING AND 7 * 86400000000 PRECEDING)
    )
    WHERE transaction_id IS NOT NULL AND us >= epoch_us(TIMESTAMP '{card_from}')
),

pairs AS (
    -- Previous / next transaction of the same card at the same terminal (within the card rows read).
    SELECT
        *,
        coalesce(us - lag(us) OVER p < 86400000000, false) AS pg1,
        coalesce(us - lag(us) OVER p < 7 * 86400000000, false) AS pg7,
        coalesce(lead(us) OVER p - us < 86400000000, false) AS ng1,
        coalesce(lead(us) OVER p - us < 7 * 86400000000, false) AS ng7
    FROM terminal
    WINDOW p AS (PARTITION BY card_id, terminal_id ORDER BY us)
),

card_windows AS (
    -- One sort per card; aggregates over the same frame packed into one sum (header).
    SELECT
        *,
        count(*) OVER c1h AS card_nb_tx_1h,
        count(*) OVER c6h AS card_nb_tx_6h,
        sum(amount_fx + (CAST(1 AS HUGEINT) << 87) + (CAST(1 - ng1::INT AS HUGEINT) << 107)) OVER c1d AS p1d,
        sum(amount_fx + (CAST(1 AS HUGEINT) << 87) + (CAST(1 - ng7::INT AS HUGEINT) << 107)) OVER c7d AS p7d,
        sum(amount_fx + (CAST(1 AS HUGEINT) << 100)) OVER c30d AS p30d,
        sum(tx_amount * tx_amount) OVER c30d AS sumsq_30d,
        sum((ng1::INT - pg1::INT) + (ng7::INT - pg7::INT) * 4294967296) OVER upto_t AS open_pairs,
        -- one struct, one window expression
        last_value({{'us': us, 'x': terminal_x, 'y': terminal_y}}) OVER before_t AS prev
    FROM (SELECT *, CAST(tx_amount * 1125899906842624.0 AS HUGEINT) AS amount_fx FROM pairs)
    WINDOW
        c AS (PARTITION BY card_id ORDER BY us),
        c1h AS (c RANGE BETWEEN 3600000000 - 1 PRECEDING AND CURRENT ROW),
        c6h AS (c RANGE BETWEEN 6 * 3600000000 - 1 PRECEDING AND CURRENT ROW),
        c1d AS (c RANGE BETWEEN 86400000000 - 1 PRECEDING AND CURRENT ROW),
        c7d AS (c RANGE BETWEEN 7 * 86400000000 - 1 PRECEDING AND CURRENT ROW),
        c30d AS (c RANGE BETWEEN 30 * 86400000000 - 1 PRECEDING AND CURRENT ROW),
        upto_t AS (c RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
        before_t AS (c RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),

card_decoded AS (
    SELECT
        * EXCLUDE (p1d, p7d, p30d, open_pairs),
        CAST((p1d >> 87) & 1048575 AS BIGINT) AS card_nb_tx_1d,
        CAST((p7d >> 87) & 1048575 AS BIGINT) AS card_nb_tx_7d,
        -- the packed fields of the 1d / 7d sums hold at most 2^20 - 1 transactions and 2^37 EUR
        CASE WHEN p30d >> 100 >= 1048576 OR p30d & ((CAST(1 AS HUGEINT) << 100) - 1) >= CAST(1 AS HUGEINT) << 87
                  OR tx_amount < 0
             THEN error('transaction_features: a card window exceeds the limits of the packed sums')
             ELSE CAST(p30d >> 100 AS BIGINT) END AS card_nb_tx_30d,
        CAST(p1d & ((CAST(1 AS HUGEINT) << 87) - 1) AS DOUBLE) / 1125899906842624.0 AS sum_1d,
        CAST(p7d & ((CAST(1 AS HUGEINT) << 87) - 1) AS DOUBLE) / 1125899906842624.0 AS sum_7d,
        CAST(p30d & ((CAST(1 AS HUGEINT) << 100) - 1) AS DOUBLE) / 1125899906842624.0 AS sum_30d,
        CAST((p1d >> 107) + (open_pairs & 4294967295) AS BIGINT) AS card_nb_terminals_1d,
        CAST((p7d >> 107) + (open_pairs >> 32) AS BIGINT) AS card_nb_terminals_7d
    FROM card_windows
    WHERE us >= epoch_us(TIMESTAMP '{out_from}') AND business_date IN ({output_dates})
),

card AS (
    -- The previous-30-day statistics exclude the current row.
    SELECT
        *,
        card_nb_tx_30d - 1 AS n_prev,
        sum_30d - tx_amount AS sum_prev,
        (sumsq_30d - tx_amount * tx_amount
            - (sum_30d - tx_amount) * (sum_30d - tx_amount) / nullif(card_nb_tx_30d - 1, 0))
            / nullif(card_nb_tx_30d - 2, 0) AS var_prev,
        CASE WHEN prev.us >= us - 30 * 86400000000 THEN (us - prev.us) / 1e6 END AS gap_prev
    FROM card_decoded
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
    SELECT mcc, day, reported_day, count(*) AS n FROM labels GROUP BY ALL
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
    make_timestamp(card.us) AS tx_datetime,
    k.card_token,
    card.terminal_id,
    -- handbook baseline
    card.tx_amount,
    card.is_weekend,
    card.is_night,
    card.card_nb_tx_1d,
    card.sum_1d / card.card_nb_tx_1d AS card_avg_amount_1d,
    card.card_nb_tx_7d,
    card.sum_7d / card.card_nb_tx_7d AS card_avg_amount_7d,
    card.card_nb_tx_30d,
    card.sum_30d / card.card_nb_tx_30d AS card_avg_amount_30d,
    card.terminal_nb_tx_1d,
    CASE WHEN card.terminal_nb_tx_1d > 0
         THEN card.known_fraud_1d / card.terminal_nb_tx_1d ELSE 0.0 END
        AS terminal_risk_1d,
    card.terminal_nb_tx_7d,
    CASE WHEN card.terminal_nb_tx_7d > 0
         THEN card.known_fraud_7d / card.terminal_nb_tx_7d ELSE 0.0 END
        AS terminal_risk_7d,
    card.terminal_nb_tx_30d,
    CASE WHEN card.terminal_nb_tx_30d > 0
         THEN card.known_fraud_30d / card.terminal_nb_tx_30d ELSE 0.0 END
        AS terminal_risk_30d,
    -- production features (docs/features.md)
    card.terminal_known_fraud_7d,
    card.terminal_known_fraud_28d,
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
    card.dist_home_terminal,
    CASE WHEN card.gap_prev IS NOT NULL
         THEN sqrt((card.terminal_x - card.prev.x) ** 2 + (card.terminal_y - card.prev.y) ** 2)
         ELSE 0.0 END AS dist_prev_terminal,
    CAST(coalesce(merchant_category.mcc_nb_tx_30d, 0) AS BIGINT) AS mcc_nb_tx_30d,
    CASE WHEN merchant_category.mcc_nb_tx_30d > 0
         THEN merchant_category.mcc_known_fraud_30d / merchant_category.mcc_nb_tx_30d ELSE 0.0 END
        AS mcc_risk_30d,
    card.is_ecommerce,
    card.three_ds_failed,
    card.ecommerce_without_3ds
FROM card
JOIN card_ids AS k ON k.card_id = card.card_id
LEFT JOIN merchant_category
    ON merchant_category.business_date = card.business_date AND merchant_category.mcc = card.mcc
