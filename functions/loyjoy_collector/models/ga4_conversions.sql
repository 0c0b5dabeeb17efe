-- requires: ga4_export_dataset
-- GA4's conversion events (the setting ga4_conversion_events), one row each, for the export tables of this run
-- (ga4_conversion_hits_this_run, which refresh.sql fills from the export with ga4_reads/conversions.sql), with a
-- purchase counted once per ecommerce.transaction_id: GA4 can log a purchase twice (a reloaded thank-you
-- page), so of the hits with one transaction id only the earliest is kept, whether the other is on a day of this
-- run or on a kept day up to ${attribution_window_days} days (the attribution window) before them. `revenue` is
-- the purchase's ecommerce.purchase_revenue, from GA4 only (never from a chat event).
-- partition by: export_day
-- cluster by: ga_client_id, event_name
-- replaces: export_day IN UNNEST(ga4_days)
WITH hits AS (
  SELECT
    export_day,
    TIMESTAMP_MICROS(event_timestamp) AS conversion_ts,
    event_name,
    transaction_id,
    revenue,
    ga_client_id,
    ga_session_id
  FROM `${project}.${dataset}.ga4_conversion_hits_this_run`
),

counted_before AS (
  SELECT DISTINCT transaction_id
  FROM `${project}.${dataset}.ga4_conversions`
  WHERE export_day BETWEEN DATE_SUB(ga4_first, INTERVAL ${attribution_window_days} DAY) AND ga4_last
    AND export_day NOT IN UNNEST(ga4_days)
    AND transaction_id IS NOT NULL
)

SELECT *
FROM hits
WHERE transaction_id IS NULL OR transaction_id NOT IN (SELECT transaction_id FROM counted_before)
QUALIFY transaction_id IS NULL
  OR ROW_NUMBER() OVER (PARTITION BY transaction_id ORDER BY conversion_ts, ga_client_id, ga_session_id) = 1
