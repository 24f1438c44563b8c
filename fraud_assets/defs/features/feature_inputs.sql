-- Inputs of features.transaction_features: narrow numeric rows for the window scans of windows.py (which
-- states the window semantics), as temp tables of this connection.
--
-- Read range: output rows have t in [{out_from}, {out_to}); card windows reach 30 days back ({card_from}),
-- delayed terminal windows 30 + 7 days ({read_from}); labels are those reported before {out_to}, of the read
-- range's transactions (fraud episodes: of the 60 days from {episode_from}).
-- Placeholders are ISO dates/timestamps produced by compute.py from validated partition keys.

-- A dense integer per card (the card windows sort on it; the token is joined back once at the end).
CREATE OR REPLACE TEMP TABLE feature_cards AS
SELECT (row_number() OVER (ORDER BY k.card_token) - 1)::INTEGER AS card_id, k.card_token
FROM (SELECT DISTINCT card_token FROM cleaned.transactions
      WHERE business_date BETWEEN DATE '{read_from_date}' AND DATE '{out_last_date}') AS k;

-- Reference data point in time: the versions of the cards and terminals (cleaned.cards, cleaned.terminals:
-- SCD type 2) numbered densely, with the business dates each serves (compute.py). A transaction reads the
-- version serving its own business date (-1: none does, e.g. a card missing from the cardholder
-- snapshots), so a later snapshot never changes an earlier day's features.
CREATE OR REPLACE TEMP TABLE feature_card_versions AS
SELECT (row_number() OVER (ORDER BY v.card_token, v._serves_from) - 1)::INTEGER AS card_version, v.card_token,
       v._serves_from, v._serves_to, v.home_x, v.home_y
FROM ({card_versions}) AS v SEMI JOIN feature_cards AS k ON k.card_token = v.card_token;
CREATE OR REPLACE TEMP TABLE feature_terminal_versions AS
SELECT (row_number() OVER (ORDER BY v.terminal_id, v._serves_from) - 1)::INTEGER AS terminal_version,
       v.terminal_id, v._serves_from, v._serves_to, v.x, v.y, coalesce(v.mcc, 'unknown') AS mcc
FROM ({terminal_versions}) AS v;

-- The transactions of the read range, in the card windows' order; the per-row flags packed in one small
-- integer (bit 0 weekend, 1 night, 2 e-commerce, 3 3-D Secure failed, 4 e-commerce without 3-D Secure).
CREATE OR REPLACE TEMP TABLE feature_inputs AS
SELECT
    t.transaction_id, t.business_date, epoch_us(t.tx_datetime) AS us, k.card_id, t.terminal_id, t.tx_amount,
    (CAST(dayofweek(t.tx_datetime_local) IN (0, 6) AS INTEGER)
     + 2 * CAST(hour(t.tx_datetime_local) <= 6 AS INTEGER)
     + 4 * CAST(coalesce(t.channel = 'ecommerce', false) AS INTEGER)
     + 8 * CAST(coalesce(t.three_ds = 'N', false) AS INTEGER)
     + 16 * CAST(coalesce(t.channel = 'ecommerce' AND coalesce(t.three_ds, '') NOT IN ('Y', 'A', 'N'), false)
                 AS INTEGER))::UTINYINT AS flags,
    hour(coalesce(t.tx_datetime_local, t.tx_datetime))::UTINYINT AS local_hour,
    t.tx_datetime >= TIMESTAMP '{out_from}' AND t.business_date IN ({output_dates}) AS is_output,
    coalesce(cv.card_version, -1) AS card_version, coalesce(tv.terminal_version, -1) AS terminal_version
FROM cleaned.transactions AS t
JOIN feature_cards AS k ON k.card_token = t.card_token
LEFT JOIN feature_card_versions AS cv ON cv.card_token = t.card_token
    AND t.business_date >= cv._serves_from AND t.business_date < cv._serves_to
LEFT JOIN feature_terminal_versions AS tv ON tv.terminal_id = t.terminal_id
    AND t.business_date >= tv._serves_from AND t.business_date < tv._serves_to
WHERE t.business_date BETWEEN DATE '{read_from_date}' AND DATE '{out_last_date}'
  AND t.tx_datetime >= TIMESTAMP '{read_from}' AND t.tx_datetime < TIMESTAMP '{out_to}'
ORDER BY k.card_id, us, t.transaction_id;

-- The read range's terminals in id order (the window code numbers them the same way).
CREATE OR REPLACE TEMP TABLE feature_terminals AS
SELECT DISTINCT terminal_id FROM feature_inputs ORDER BY terminal_id;

-- Labels known by the end of the last output day, for transactions of the read range, with the merchant
-- category of their terminal as of their day.
CREATE OR REPLACE TEMP TABLE feature_labels AS
SELECT tx.terminal_id, coalesce(m.mcc, 'unknown') AS mcc, tx.us AS s, epoch_us(l.reported_at) AS r,
       tx.business_date AS day, CAST(l.reported_at AS DATE) AS reported_day
FROM feature_inputs AS tx JOIN cleaned.labels AS l ON l.transaction_id = tx.transaction_id
LEFT JOIN feature_terminal_versions AS m ON m.terminal_version = tx.terminal_version
WHERE l.reported_at < TIMESTAMP '{out_to}';

-- Each label enters and leaves the known-fraud counters (windows.py): delayed_n counts the labels of
-- (t - 7d - n, t - 7d] reported by t; recent_n those of (t - n, t) reported by t, entering strictly after
-- their own transaction, so a row never sees its own label.
CREATE OR REPLACE TEMP TABLE feature_label_events AS
SELECT terminal_id, us, delayed_1d::TINYINT AS delayed_1d, delayed_7d::TINYINT AS delayed_7d,
       delayed_14d::TINYINT AS delayed_14d, delayed_30d::TINYINT AS delayed_30d,
       recent_7d::TINYINT AS recent_7d, recent_28d::TINYINT AS recent_28d
FROM (
    SELECT terminal_id, greatest(s + 7 * 86400000000, r) AS us, 1 AS delayed_1d, 1 AS delayed_7d,
           1 AS delayed_14d, 1 AS delayed_30d, 0 AS recent_7d, 0 AS recent_28d FROM feature_labels
    UNION ALL
    SELECT terminal_id, greatest(s + 8 * 86400000000, r), -1, 0, 0, 0, 0, 0 FROM feature_labels
    UNION ALL
    SELECT terminal_id, greatest(s + 14 * 86400000000, r), 0, -1, 0, 0, 0, 0 FROM feature_labels
    UNION ALL
    SELECT terminal_id, greatest(s + 21 * 86400000000, r), 0, 0, -1, 0, 0, 0 FROM feature_labels
    UNION ALL
    SELECT terminal_id, greatest(s + 37 * 86400000000, r), 0, 0, 0, -1, 0, 0 FROM feature_labels
    UNION ALL
    SELECT terminal_id, greatest(s + 1, r), 0, 0, 0, 0, 1, 1 FROM feature_labels
    UNION ALL
    SELECT terminal_id, greatest(s + 7 * 86400000000, r), 0, 0, 0, 0, -1, 0 FROM feature_labels
    UNION ALL
    SELECT terminal_id, greatest(s + 28 * 86400000000, r), 0, 0, 0, 0, 0, -1 FROM feature_labels
);

-- Merchant-category risk is a daily snapshot: for output day D, the category's transactions of the 30
-- business days [D - 37, D - 8] (UTC), and how many of them have a label reported before D 00:00. Known at
-- the start of D, so at every t of D: point-in-time correct, and a few thousand rows of work instead of a
-- window over partitions of hundreds of thousands of rows.
CREATE OR REPLACE TEMP TABLE feature_merchant_categories AS
WITH out_days AS (
    SELECT unnest([{output_dates}]) AS business_date
),

mcc_days AS (
    SELECT coalesce(m.mcc, 'unknown') AS mcc, t.business_date AS day, count(*) AS n
    FROM feature_inputs AS t LEFT JOIN feature_terminal_versions AS m ON m.terminal_version = t.terminal_version
    GROUP BY ALL
),

mcc_label_days AS (
    SELECT mcc, day, reported_day, count(*) AS n FROM feature_labels GROUP BY ALL
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
)

SELECT c.business_date, c.mcc, c.mcc_nb_tx_30d, coalesce(k.known, 0) AS mcc_known_fraud_30d
FROM mcc_counts AS c LEFT JOIN mcc_known AS k ON k.business_date = c.business_date AND k.mcc = c.mcc;

-- Fraud episodes: the labels reported before the end of the last output day of transactions from
-- {episode_from} (60 days before the first output day); card_id NULL for a card outside the read range.
CREATE OR REPLACE TEMP TABLE feature_episode_labels AS
SELECT t.terminal_id, k.card_id, epoch_us(t.tx_datetime) AS s, epoch_us(l.reported_at) AS r
FROM cleaned.labels AS l JOIN cleaned.transactions AS t ON t.transaction_id = l.transaction_id
LEFT JOIN feature_cards AS k ON k.card_token = t.card_token
WHERE t.business_date BETWEEN DATE '{episode_from_date}' AND DATE '{out_last_date}'
  AND t.tx_datetime >= TIMESTAMP '{episode_from}' AND l.reported_at < TIMESTAMP '{out_to}';

-- Per output row, the frauds known at t (reported <= t) among its terminal's and its card's transactions of
-- (t - 60d, t): a row never sees its own label. One row per output transaction that has any (44 % of them
-- in the handbook world): a range join that touches only the labelled transactions of a row's own terminal
-- or card.
CREATE OR REPLACE TEMP TABLE feature_episodes AS
WITH terminal_known AS (
    SELECT o.transaction_id, count(*) AS terminal_known, min(l.s) AS terminal_first_us,
           max(l.s) AS terminal_last_us
    FROM feature_inputs AS o JOIN feature_episode_labels AS l
        ON l.terminal_id = o.terminal_id AND l.s < o.us AND l.s > o.us - {episode_us} AND l.r <= o.us
    WHERE o.is_output
    GROUP BY ALL
),

card_known AS (
    SELECT o.transaction_id, count(*) AS card_known
    FROM feature_inputs AS o JOIN feature_episode_labels AS l
        ON l.card_id = o.card_id AND l.s < o.us AND l.s > o.us - {episode_us} AND l.r <= o.us
    WHERE o.is_output
    GROUP BY ALL
)

SELECT transaction_id, coalesce(t.terminal_known, 0) AS terminal_known,
       coalesce(t.terminal_first_us, 0) AS terminal_first_us, coalesce(t.terminal_last_us, 0) AS terminal_last_us,
       coalesce(c.card_known, 0) AS card_known
FROM terminal_known AS t FULL JOIN card_known AS c USING (transaction_id);
