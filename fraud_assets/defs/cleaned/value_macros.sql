-- How the cleaning reads a raw value, as DuckDB temp macros: the rules (clean_transactions.sql) and the
-- restatement queries (transform.py) read ids, text and currencies alike through these.

-- Text without surrounding spaces, blank -> NULL. Numbers are ASCII digits only: `[0-9]`, never a
-- class that admits other scripts' digits. Ids are 1-18 digits (18 always fit a BIGINT).
CREATE OR REPLACE TEMP MACRO _text(x) AS nullif(trim(x), '');
CREATE OR REPLACE TEMP MACRO _id(x) AS
    CASE WHEN regexp_full_match(x, ' *[0-9]{1,18} *') THEN CAST(trim(x) AS BIGINT) END;
-- A leap second (`:60`) is read as the last second of its minute, so it stays on its business date.
CREATE OR REPLACE TEMP MACRO _leap(x) AS
    CASE WHEN x LIKE '%:60' OR x LIKE '%:60Z' THEN regexp_replace(x, ':60(Z?)$', ':59\1') ELSE x END;
CREATE OR REPLACE TEMP MACRO _message_kind(x) AS
    CASE _text(x)
        WHEN 'auth' THEN 'auth' WHEN '0100' THEN 'auth'
        WHEN 'reversal' THEN 'reversal' WHEN '0400' THEN 'reversal'
    END;
