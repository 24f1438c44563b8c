-- The verdict of every raw authorisation row of a chunk of business dates (temp view `_raw_chunk`):
-- its typed values, the FIRST quarantine reason that applies, and its outcome (`_outcome`):
--   cleaned      -> cleaned.transactions
--   quarantined  -> cleaned.quarantine, with `_reason`, `_offending_column`, `_offending_value`
--   duplicate    -> an exact retransmission of the kept version (counted, not stored)
--   reversal     -> a matched reversal or the authorisation it reverses (counted, not stored)
-- so per business date: raw rows = cleaned + quarantined + duplicates + reversal rows.
-- Reads cleaned.terminals, cleaned.fx_rates and the variable `reporting_currency`; leaves the temp
-- tables `_zone_days` and `_verdicts` in this connection.

-- Stripped text, blank -> NULL; ids are 1-18 ASCII digits (18 always fit a BIGINT).
CREATE OR REPLACE TEMP MACRO _text(x) AS nullif(trim(x, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)), '');
CREATE OR REPLACE TEMP MACRO _id(x) AS
    CASE WHEN regexp_full_match(_text(x), '[0-9]{1,18}') THEN CAST(_text(x) AS BIGINT) END;
-- A leap second (`:60`) is read as the last second of its minute, so it stays on its business date.
CREATE OR REPLACE TEMP MACRO _leap(x) AS
    CASE WHEN regexp_matches(x, ':60Z?$') THEN regexp_replace(x, ':60(Z?)$', ':59\1') ELSE x END;

CREATE OR REPLACE TEMP TABLE _typed AS
WITH parsed AS (
    SELECT r.*,
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
        CASE _text(r.message_type)
            WHEN 'auth' THEN 'auth' WHEN '0100' THEN 'auth'
            WHEN 'reversal' THEN 'reversal' WHEN '0400' THEN 'reversal'
        END AS _message_type,
        _id(r.original_transaction_id) AS _original_id
    FROM _raw_chunk r
)
SELECT p.*,
    t.terminal_id IS NOT NULL AS _known_terminal,
    z.name AS _zone,  -- NULL when ICU does not know the terminal's zone: its times cannot be read
    CASE WHEN p.feed = 'acq_b' THEN
        -- processor B: integer minor units; ISO 4217 exponent 2 unless listed
        CASE WHEN regexp_full_match(p._amount_text, '-?[0-9]+') THEN
            CAST(p._amount_text AS DOUBLE) / CASE
                WHEN p._currency IN ('JPY', 'KRW', 'ISK', 'CLP', 'VND', 'XOF', 'XAF', 'PYG', 'UGX') THEN 1.0
                WHEN p._currency IN ('BHD', 'KWD', 'JOD', 'OMR', 'TND', 'IQD', 'LYD') THEN 1000.0
                ELSE 100.0 END
        END
    ELSE
        -- processor A: major units, `.` decimal point; a lone `,` decimal is tolerated ("12,50")
        CASE WHEN regexp_full_match(p._amount_text, '-?[0-9]+([.,][0-9]+)?') THEN
            CAST(replace(p._amount_text, ',', '.') AS DOUBLE)
        END
    END AS _amount,
    CASE WHEN p._currency = getvariable('reporting_currency') THEN 1.0 ELSE fx.rate END AS _rate,
    CASE WHEN p.feed = 'acq_b'
        THEN CAST(TRY_STRPTIME(p._time_text, '%d/%m/%Y %H:%M:%S') AS TIMESTAMP) END AS _local_b,
    CASE WHEN p.feed <> 'acq_b'
        THEN CAST(TRY_STRPTIME(p._time_text, '%Y-%m-%dT%H:%M:%SZ') AS TIMESTAMP) END AS _utc_a
FROM parsed p
LEFT JOIN cleaned.terminals t ON t.terminal_id = p._terminal_id
LEFT JOIN (SELECT name FROM pg_timezone_names()) z ON z.name = t.timezone
LEFT JOIN cleaned.fx_rates fx ON fx.rate_date = p.business_date AND fx.quote_currency = p._currency;

-- Time zones. A zone's UTC offset, sampled one day before and two days after a (local or UTC)
-- calendar day, is the same at both ends on every day but those of a DST change: there, and only
-- there, each row is resolved on its own (one ICU conversion per zone and day, not per row).
CREATE OR REPLACE TEMP TABLE _zone_days AS
SELECT zone, day,
    timezone(zone, timezone('UTC', CAST(day - 1 AS TIMESTAMP))) - CAST(day - 1 AS TIMESTAMP) AS off_before,
    timezone(zone, timezone('UTC', CAST(day + 2 AS TIMESTAMP))) - CAST(day + 2 AS TIMESTAMP) AS off_after
FROM (
    SELECT DISTINCT _zone AS zone, CAST(coalesce(_local_b, _utc_a) AS DATE) AS day
    FROM _typed WHERE _zone IS NOT NULL AND coalesce(_local_b, _utc_a) IS NOT NULL
);

CREATE OR REPLACE TEMP TABLE _judged AS
WITH timed AS (
    SELECT t.*,
        t._local_b - d.off_before AS _b_early_offset,  -- read with the offset before the change
        t._local_b - d.off_after AS _b_late_offset,    -- read with the offset after it
        d.off_before = d.off_after AS _steady,
        d.off_before AS _offset
    FROM _typed t LEFT JOIN _zone_days d
        ON d.zone = t._zone AND d.day = CAST(coalesce(t._local_b, t._utc_a) AS DATE)
),
localised AS (
    SELECT * EXCLUDE (_b_early_offset, _b_late_offset, _steady, _offset),
        -- Processor B's local times -> UTC. On a DST change a local time that exists once has one
        -- valid reading; one in the repeated autumn hour has two, and the first (summer-time) one is
        -- taken; one inside the spring gap has none, and is read with the offset before the change
        -- (shifted forward by the gap).
        CASE
            WHEN feed <> 'acq_b' THEN _utc_a
            WHEN _steady THEN _local_b - _offset
            WHEN _steady IS NULL THEN NULL
            ELSE CASE
                WHEN timezone(_zone, timezone('UTC', _b_early_offset)) <> _local_b THEN
                    CASE WHEN timezone(_zone, timezone('UTC', _b_late_offset)) = _local_b
                        THEN _b_late_offset ELSE _b_early_offset END
                WHEN timezone(_zone, timezone('UTC', _b_late_offset)) = _local_b
                    THEN least(_b_early_offset, _b_late_offset)
                ELSE _b_early_offset
            END
        END AS _utc,
        CASE
            WHEN feed = 'acq_b' THEN _local_b
            WHEN _steady THEN _utc_a + _offset
            WHEN _steady IS NULL THEN NULL
            ELSE timezone(_zone, timezone('UTC', _utc_a))
        END AS _local
    FROM timed
),
judged AS (
    SELECT * EXCLUDE (_local_b, _utc_a),
        -- The rule order: a row gets the FIRST reason that applies.
        CASE
            WHEN malformed_reason IS NOT NULL THEN 'malformed_line'
            WHEN _tx_id IS NULL THEN 'invalid_transaction_id'
            WHEN NOT coalesce(pan_valid, false) THEN 'invalid_pan'
            WHEN _terminal_text IS NULL THEN 'missing_terminal_id'
            WHEN NOT _known_terminal THEN 'unknown_terminal'
            WHEN _amount IS NULL OR NOT isfinite(_amount) THEN 'invalid_amount'
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
SELECT * FROM judged;

-- Among the valid rows, per transaction_id the most recently landed version is kept (latest landing
-- date, then file name, then row): a copy equal to it in every parsed field is an exact
-- retransmission, a copy that differs is an older version a corrected file replaced.
CREATE OR REPLACE TEMP TABLE _deduplicated AS
WITH repeated AS (
    SELECT _tx_id FROM _judged WHERE _rule_reason IS NULL GROUP BY _tx_id HAVING count(*) > 1
),
versions AS (
    SELECT source_file, row_number,
        row_number() OVER newest_first = 1 AS _newest,
        struct_pack(_utc, card_token, _terminal_id, _amount, _currency, _channel, _three_ds,
                    _message_type, _original_id)
            = first_value(struct_pack(_utc, card_token, _terminal_id, _amount, _currency, _channel,
                                      _three_ds, _message_type, _original_id)) OVER newest_first AS _same
    FROM _judged SEMI JOIN repeated USING (_tx_id)
    WHERE _rule_reason IS NULL
    WINDOW newest_first AS (PARTITION BY _tx_id ORDER BY landing_date DESC, source_file DESC, row_number DESC)
)
SELECT j.*,
    CASE
        WHEN j._rule_reason IS NOT NULL OR v._newest IS NULL OR v._newest THEN NULL
        WHEN v._same THEN 'duplicate'
        ELSE 'superseded'
    END AS _copy
FROM _judged j LEFT JOIN versions v USING (source_file, row_number);

-- Reversal rule: a kept reversal whose original_transaction_id is a kept authorisation of the same
-- business date removes both; a reversal without one is an orphan.
CREATE OR REPLACE TEMP TABLE _verdicts AS
WITH kept AS (
    SELECT business_date, _tx_id, _original_id, _message_type FROM _deduplicated
    WHERE _rule_reason IS NULL AND _copy IS NULL
),
reversed AS (
    SELECT DISTINCT r.business_date, r._original_id AS _tx_id
    FROM kept r JOIN kept a ON a.business_date = r.business_date AND a._tx_id = r._original_id
    WHERE r._message_type = 'reversal' AND a._message_type = 'auth'
),
outcomes AS MATERIALIZED (
    SELECT d.*,
        CASE
            WHEN d._rule_reason IS NOT NULL OR d._copy = 'superseded' THEN 'quarantined'
            WHEN d._copy = 'duplicate' THEN 'duplicate'
            WHEN d._message_type = 'reversal' AND rr._tx_id IS NOT NULL THEN 'reversal'
            WHEN d._message_type = 'reversal' THEN 'quarantined'
            WHEN ra._tx_id IS NOT NULL THEN 'reversal'
            ELSE 'cleaned'
        END AS _outcome,
        CASE
            WHEN d._rule_reason IS NOT NULL THEN d._rule_reason
            WHEN d._copy = 'superseded' THEN 'superseded_by_correction'
            WHEN d._copy IS NULL AND d._message_type = 'reversal' AND rr._tx_id IS NULL THEN 'orphan_reversal'
        END AS _reason
    FROM _deduplicated d
    LEFT JOIN reversed rr
        ON d._message_type = 'reversal' AND rr.business_date = d.business_date AND rr._tx_id = d._original_id
    LEFT JOIN reversed ra
        ON d._message_type = 'auth' AND ra.business_date = d.business_date AND ra._tx_id = d._tx_id
)
-- Where a quarantined row's problem is: the column, and its value as received (masked later).
SELECT *,
    CASE _reason
        WHEN 'malformed_line' THEN 'raw_line'
        WHEN 'invalid_pan' THEN 'pan'
        WHEN 'invalid_transaction_id' THEN 'transaction_id'
        WHEN 'superseded_by_correction' THEN 'transaction_id'
        WHEN 'missing_terminal_id' THEN 'terminal_id'
        WHEN 'unknown_terminal' THEN 'terminal_id'
        WHEN 'invalid_amount' THEN 'amount'
        WHEN 'negative_amount' THEN 'amount'
        WHEN 'unknown_currency' THEN 'currency'
        WHEN 'invalid_timestamp' THEN 'tx_datetime'
        WHEN 'future_timestamp' THEN 'tx_datetime'
        WHEN 'outside_business_date' THEN 'tx_datetime'
        WHEN 'invalid_channel' THEN 'channel'
        WHEN 'invalid_three_ds' THEN 'three_ds'
        WHEN 'invalid_message_type' THEN 'message_type'
        WHEN 'missing_original_transaction_id' THEN 'original_transaction_id'
        WHEN 'orphan_reversal' THEN 'original_transaction_id'
    END AS _offending_column,
    CASE _reason
        WHEN 'malformed_line' THEN raw_line_masked
        WHEN 'invalid_pan' THEN pan_masked
        WHEN 'invalid_transaction_id' THEN transaction_id
        WHEN 'superseded_by_correction' THEN transaction_id
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
        WHEN 'orphan_reversal' THEN original_transaction_id
    END AS _offending_value
FROM outcomes;

DROP TABLE _typed;
DROP TABLE _judged;
DROP TABLE _deduplicated;
