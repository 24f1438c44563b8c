-- The verdict of every raw authorisation row of a chunk of business dates (temp view `_raw_chunk`,
-- dates in temp table `_chunk_dates`): its typed values, the FIRST quarantine reason that applies,
-- and its outcome (`_outcome`):
--   cleaned      -> cleaned.transactions
--   quarantined  -> cleaned.quarantine, with `_reason` and `_offending_value` (masked later)
--   duplicate    -> an exact retransmission of the kept version (counted, not stored)
--   reversal     -> a matched reversal or the authorisation it reverses (counted, not stored)
-- so per business date: raw rows = cleaned + quarantined + duplicates + reversal rows.
-- Reads the value macros (`_text`, `_id`, `_leap`, `_message_kind`: value_macros.sql, run first),
-- the terminal versions with the days each serves (temp view `_terminal_versions`: reference.py,
-- `versions_serving`), cleaned.fx_rates, the rows of the days around the chunk a reversal may link (temp
-- views `_raw_earlier`, `_raw_later`, dates in `_neighbour_dates`: see `_judged_rows`) and the
-- variables `reporting_currency`, `fx_max_age_days`, `reversal_lookback_days`; leaves the temp tables
-- `_verdicts` (the chunk's rows) and `_neighbour_verdicts` (the neighbours' rows) in this connection.
--
-- Cost: every row is parsed and judged once, in one pass; only the few valid rows whose transaction
-- id needs other rows (an id landed more than once, a reversal, the authorisation a reversal names)
-- are looked at again, for the dedup and reversal rules. The days around the chunk add only their
-- reversals and the rows a chunk reversal names.

-- Reversals across midnight: an authorisation at 23:58 reversed at 00:03 has its reversal in the next
-- business date's file. So the chunk's rows are judged together with the few rows of the days around
-- it (at most `reversal_lookback_days` away, outside the chunk) that a reversal link can join: the later
-- days' reversals, and the earlier days' rows whose id a chunk reversal names. The same rules judge
-- them; they only decide the chunk rows they link to, and leave `_verdicts` at the end.
CREATE OR REPLACE TEMP VIEW _judged_rows AS
SELECT * FROM _raw_chunk
UNION ALL
SELECT * FROM _raw_later WHERE _message_kind(message_type) = 'reversal'
UNION ALL
SELECT * FROM _raw_earlier WHERE _id(transaction_id) IN (
    SELECT _id(original_transaction_id) FROM _raw_chunk WHERE _message_kind(message_type) = 'reversal'
);
CREATE OR REPLACE TEMP TABLE _judged_dates AS
SELECT business_date FROM _chunk_dates UNION ALL SELECT business_date FROM _neighbour_dates;

-- Every raw row of the chunk judged: typed values and the first rule that fails (`_rule_reason`,
-- NULL when none) with the value as received it failed on; its outcome so far is its rule's.
CREATE OR REPLACE TEMP TABLE _verdicts AS
WITH
-- A terminal's zone is NULL when ICU does not know it: its times cannot be read. A row is read with the
-- version of its terminal that serves its business date (point in time: a later snapshot's zone never
-- rewrites an earlier day; a terminal dropped by a snapshot is unknown from that snapshot's date on).
terminals AS (
    SELECT t.terminal_id, t._serves_from, t._serves_to, z.name AS zone
    FROM _terminal_versions t LEFT JOIN (SELECT name FROM pg_timezone_names()) z ON z.name = t.timezone
),
-- Time zones. A zone's UTC offset, sampled one day before and two days after a (local or UTC)
-- calendar day, is the same at both ends on every day but those of a DST change: there, and only
-- there, each row is resolved on its own. The offsets come from a small grid (every known zone of a
-- terminal x the chunk's days and their neighbours), not from ICU conversions per row; a row outside
-- the grid (a time far from its business date) gets its offsets computed on its own.
zones AS (SELECT DISTINCT zone FROM terminals WHERE zone IS NOT NULL),
days AS (
    SELECT CAST(unnest(generate_series(
        CAST(min(business_date) - 1 AS TIMESTAMP), CAST(max(business_date) + 1 AS TIMESTAMP), INTERVAL 1 DAY
    )) AS DATE) AS day
    FROM _judged_dates
),
zone_days AS (
    SELECT zone, day,
        timezone(zone, timezone('UTC', CAST(day - 1 AS TIMESTAMP))) - CAST(day - 1 AS TIMESTAMP) AS off_before,
        timezone(zone, timezone('UTC', CAST(day + 2 AS TIMESTAMP))) - CAST(day + 2 AS TIMESTAMP) AS off_after
    FROM zones, days
),
parsed AS (
    SELECT
        r.business_date, r.feed, r.source_file, r.row_number, r.landing_date, r.ingested_at,
        r.card_token, r.pan_bin, r.pan_last4, r.pan_valid,
        -- as received, for the quarantine's offending_value
        r.transaction_id, r.terminal_id, r.amount, r.currency, r.tx_datetime, r.channel, r.three_ds,
        r.message_type, r.original_transaction_id, r.malformed_reason, r.raw_line_masked, r.pan_masked,
        _id(r.transaction_id) AS _tx_id,
        _text(r.terminal_id) AS _terminal_text,
        _id(r.terminal_id) AS _terminal_id,
        upper(_text(r.currency)) AS _currency,
        _text(r.amount) AS _amount_text,
        _leap(_text(r.tx_datetime)) AS _time_text,
        CASE _text(r.channel)
            WHEN 'card_present' THEN 'card_present' WHEN 'CP' THEN 'card_present'
            WHEN 'ecommerce' THEN 'ecommerce' WHEN 'ECOM' THEN 'ecommerce'
        END AS _channel,
        upper(_text(r.three_ds)) AS _three_ds,
        _message_kind(r.message_type) AS _message_type,
        _id(r.original_transaction_id) AS _original_id
    FROM _judged_rows r
),
typed AS (
    SELECT p.*,
        t.terminal_id IS NOT NULL AS _known_terminal,
        t.zone AS _zone,
        CASE WHEN p.feed = 'acq_b' THEN
            -- processor B: integer minor units; ISO 4217 exponent 2 unless listed (every current
            -- currency of exponent 0, 3 and 4)
            CASE WHEN regexp_full_match(p._amount_text, '-?[0-9]+') THEN
                CAST(p._amount_text AS DOUBLE) / CASE
                    WHEN p._currency IN ('BIF', 'CLP', 'DJF', 'GNF', 'ISK', 'JPY', 'KMF', 'KRW', 'PYG', 'RWF',
                                         'UGX', 'UYI', 'VND', 'VUV', 'XAF', 'XOF', 'XPF') THEN 1.0
                    WHEN p._currency IN ('BHD', 'KWD', 'JOD', 'OMR', 'TND', 'IQD', 'LYD') THEN 1000.0
                    WHEN p._currency IN ('CLF', 'UYW') THEN 10000.0
                    ELSE 100.0 END
            END
        ELSE
            -- processor A: major units, `.` decimal point; a lone `,` decimal is tolerated ("12,50"),
            -- but not one followed by exactly three digits: "1,234" is a thousands separator as often
            -- as a decimal comma, and reading it as 1.234 would be wrong by a factor of 1,000
            CASE WHEN regexp_full_match(p._amount_text, '-?[0-9]+([.][0-9]+|,([0-9]{1,2}|[0-9]{4,}))?') THEN
                CAST(replace(p._amount_text, ',', '.') AS DOUBLE)
            END
        END AS _amount,
        CASE WHEN p._currency = getvariable('reporting_currency') THEN 1.0 ELSE fx.rate END AS _rate,
        CASE WHEN p.feed = 'acq_b'
            THEN CAST(TRY_STRPTIME(p._time_text, '%d/%m/%Y %H:%M:%S') AS TIMESTAMP) END AS _local_b,
        CASE WHEN p.feed <> 'acq_b'
            THEN CAST(TRY_STRPTIME(p._time_text, '%Y-%m-%dT%H:%M:%SZ') AS TIMESTAMP) END AS _utc_a
    FROM parsed p
    LEFT JOIN terminals t ON t.terminal_id = p._terminal_id
        AND p.business_date >= t._serves_from AND p.business_date < t._serves_to
    -- the rate of the business date or, on a day without one (weekends, holidays: reference rates are
    -- not published), the latest published before it, at most `fx_max_age_days` old: one row per
    -- (chunk day, currency), so the rows join on equality
    LEFT JOIN (
        SELECT d.business_date, fx.quote_currency, arg_max(fx.rate, fx.rate_date) AS rate
        FROM _judged_dates d JOIN cleaned.fx_rates fx ON fx.rate_date <= d.business_date
            AND fx.rate_date >= d.business_date - CAST(getvariable('fx_max_age_days') AS INTEGER)
        GROUP BY ALL
    ) fx ON fx.business_date = p.business_date AND fx.quote_currency = p._currency
),
offsets AS (
    SELECT t.*, coalesce(t._local_b, t._utc_a) AS _time,
        coalesce(d.off_before, timezone(t._zone, timezone('UTC', _time - INTERVAL 1 DAY)) - (_time - INTERVAL 1 DAY))
            AS _off_before,
        coalesce(d.off_after, timezone(t._zone, timezone('UTC', _time + INTERVAL 2 DAY)) - (_time + INTERVAL 2 DAY))
            AS _off_after
    FROM typed t
    LEFT JOIN zone_days d ON d.zone = t._zone AND d.day = CAST(coalesce(t._local_b, t._utc_a) AS DATE)
),
timed AS (
    SELECT *,
        _local_b - _off_before AS _b_early_offset,  -- read with the offset before the change
        _local_b - _off_after AS _b_late_offset,    -- read with the offset after it
        _off_before = _off_after AS _steady
    FROM offsets
),
localised AS (
    SELECT *,
        -- Processor B's local times -> UTC. On a DST change a local time that exists once has one
        -- valid reading; one in the repeated autumn hour has two, and the first (summer-time) one is
        -- taken; one inside the spring gap has none, and is read with the offset before the change
        -- (shifted forward by the gap).
        CASE
            WHEN feed <> 'acq_b' THEN _utc_a
            WHEN _steady THEN _b_early_offset
            WHEN _steady IS NULL THEN NULL
            WHEN timezone(_zone, timezone('UTC', _b_early_offset)) <> _local_b THEN
                CASE WHEN timezone(_zone, timezone('UTC', _b_late_offset)) = _local_b
                    THEN _b_late_offset ELSE _b_early_offset END
            WHEN timezone(_zone, timezone('UTC', _b_late_offset)) = _local_b
                THEN least(_b_early_offset, _b_late_offset)
            ELSE _b_early_offset
        END AS _utc,
        CASE
            WHEN feed = 'acq_b' THEN _local_b
            WHEN _steady THEN _utc_a + _off_before
            WHEN _steady IS NULL THEN NULL
            ELSE timezone(_zone, timezone('UTC', _utc_a))
        END AS _local
    FROM timed
),
judged AS (
    SELECT *,
        -- The rule order: a row gets the FIRST reason that applies.
        CASE
            WHEN malformed_reason IS NOT NULL THEN 'malformed_line'
            WHEN _tx_id IS NULL THEN 'invalid_transaction_id'
            WHEN NOT coalesce(pan_valid, false) THEN 'invalid_pan'
            WHEN _terminal_text IS NULL THEN 'missing_terminal_id'
            WHEN NOT _known_terminal THEN 'unknown_terminal'
            WHEN _amount IS NULL OR NOT isfinite(_amount) OR _amount >= getvariable('max_amount')
                OR _amount / _rate >= getvariable('max_amount') THEN 'invalid_amount'
            WHEN _amount < 0 THEN 'negative_amount'
            WHEN _rate IS NULL OR NOT _rate > 0 THEN 'unknown_currency'
            WHEN _utc IS NULL OR _local IS NULL THEN 'invalid_timestamp'
            WHEN _utc > ingested_at OR _utc >= landing_date + INTERVAL 1 DAY THEN 'future_timestamp'
            WHEN CAST(_utc AS DATE) <> business_date THEN 'outside_business_date'
            WHEN _channel IS NULL THEN 'invalid_channel'
            WHEN _three_ds IS NOT NULL AND _three_ds NOT IN ('Y', 'N', 'A', 'U') THEN 'invalid_three_ds'
            WHEN _message_type IS NULL THEN 'invalid_message_type'
            WHEN _message_type = 'reversal' AND _original_id IS NULL THEN 'missing_original_transaction_id'
        END AS _rule_reason
    FROM localised
)
SELECT
    business_date, feed, source_file, row_number, landing_date, ingested_at, card_token, pan_bin,
    pan_last4, transaction_id, original_transaction_id, _tx_id, _terminal_id, _currency, _amount, _rate,
    _utc, _local, _channel, _three_ds, _message_type, _original_id, _rule_reason,
    CASE WHEN _rule_reason IS NULL THEN 'cleaned' ELSE 'quarantined' END AS _outcome,
    _rule_reason AS _reason,
    CASE _rule_reason
        WHEN 'malformed_line' THEN raw_line_masked
        WHEN 'invalid_transaction_id' THEN transaction_id
        WHEN 'invalid_pan' THEN pan_masked
        WHEN 'missing_terminal_id' THEN terminal_id
        WHEN 'unknown_terminal' THEN terminal_id
        WHEN 'invalid_amount' THEN amount
        WHEN 'negative_amount' THEN amount
        WHEN 'unknown_currency' THEN currency
        WHEN 'invalid_timestamp' THEN tx_datetime
        WHEN 'future_timestamp' THEN tx_datetime
        WHEN 'outside_business_date' THEN tx_datetime
        WHEN 'invalid_channel' THEN channel
        WHEN 'invalid_three_ds' THEN three_ds
        WHEN 'invalid_message_type' THEN message_type
        WHEN 'missing_original_transaction_id' THEN original_transaction_id
    END AS _offending_value
FROM judged;

-- The dedup and reversal rules, on the valid rows whose id needs other rows to be judged (few): an id
-- on more than one valid row, a reversal, the id a reversal names. Among the valid rows, per
-- transaction_id the most recently landed version is kept (latest landing date, then file name, then
-- row): a copy equal to it in every parsed field is an exact retransmission, a copy that differs is an
-- older version a corrected file replaced. Then a kept reversal whose original_transaction_id is a kept
-- authorisation of the same card, amount and currency, of its business date or at most
-- `reversal_lookback_days` before it, removes both; a reversal without one is an orphan (a reversal of
-- another card's authorisation, or a partial one, must not erase it silently).
CREATE OR REPLACE TEMP TABLE _linked_outcomes AS
WITH valid AS (SELECT * FROM _verdicts WHERE _rule_reason IS NULL),
linked_ids AS (
    SELECT _tx_id FROM valid GROUP BY _tx_id HAVING count(*) > 1 OR bool_or(_message_type = 'reversal')
    UNION
    SELECT _original_id FROM valid WHERE _message_type = 'reversal'
),
versions AS MATERIALIZED (
    SELECT *,
        row_number() OVER newest_first > 1 AS _older,
        struct_pack(_utc, card_token, _terminal_id, _amount, _currency, _channel, _three_ds,
                    _message_type, _original_id)
            = first_value(struct_pack(_utc, card_token, _terminal_id, _amount, _currency, _channel,
                                      _three_ds, _message_type, _original_id)) OVER newest_first AS _same
    FROM valid SEMI JOIN linked_ids USING (_tx_id)
    WINDOW newest_first AS (PARTITION BY _tx_id ORDER BY landing_date DESC, source_file DESC, row_number DESC)
),
kept AS (SELECT * FROM versions WHERE NOT _older),
reversed AS (
    SELECT r.business_date AS _reversal_date, a.business_date AS _auth_date, r._original_id AS _tx_id
    FROM kept r JOIN kept a ON a._tx_id = r._original_id
        AND a.business_date BETWEEN r.business_date - CAST(getvariable('reversal_lookback_days') AS INTEGER)
            AND r.business_date
        AND a.card_token = r.card_token AND a._amount = r._amount AND a._currency = r._currency
    WHERE r._message_type = 'reversal' AND a._message_type = 'auth'
)
SELECT v.source_file, v.row_number,
    CASE
        WHEN v._older AND v._same THEN 'duplicate'
        WHEN v._older THEN 'quarantined'
        WHEN v._message_type = 'reversal' AND rr._tx_id IS NULL THEN 'quarantined'
        WHEN v._message_type = 'reversal' OR ra._tx_id IS NOT NULL THEN 'reversal'
        ELSE 'cleaned'
    END AS _outcome,
    CASE
        WHEN v._older AND v._same THEN NULL
        WHEN v._older THEN 'superseded_by_correction'
        WHEN v._message_type = 'reversal' AND rr._tx_id IS NULL THEN 'orphan_reversal'
    END AS _reason,
    CASE
        WHEN v._older AND v._same THEN NULL
        WHEN v._older THEN v.transaction_id
        WHEN v._message_type = 'reversal' AND rr._tx_id IS NULL THEN v.original_transaction_id
    END AS _offending_value
FROM versions v
LEFT JOIN (SELECT DISTINCT _reversal_date, _tx_id FROM reversed) rr
    ON v._message_type = 'reversal' AND rr._reversal_date = v.business_date AND rr._tx_id = v._original_id
LEFT JOIN (SELECT DISTINCT _auth_date, _tx_id FROM reversed) ra
    ON v._message_type = 'auth' AND ra._auth_date = v.business_date AND ra._tx_id = v._tx_id;

UPDATE _verdicts v
SET _outcome = l._outcome, _reason = l._reason, _offending_value = l._offending_value
FROM _linked_outcomes l
WHERE v.source_file = l.source_file AND v.row_number = l.row_number;

-- The neighbours' rows are their own days' business: set aside (transform.restated_days compares them
-- with what their days hold), out of the chunk's verdicts.
CREATE OR REPLACE TEMP TABLE _neighbour_verdicts AS
SELECT * FROM _verdicts SEMI JOIN _neighbour_dates USING (business_date);
DELETE FROM _verdicts WHERE business_date IN (SELECT business_date FROM _neighbour_dates);

DROP TABLE _linked_outcomes;
DROP VIEW _judged_rows;
DROP TABLE _judged_dates;
