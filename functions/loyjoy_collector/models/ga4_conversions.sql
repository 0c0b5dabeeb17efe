-- requires: ga4_export_dataset
-- GA4's conversion events (the setting ga4_conversion_events), one row each, for the export tables of this run,
-- with a purchase counted once per ecommerce.transaction_id: GA4 can log a purchase twice (a reloaded thank-you
-- page), so of the hits with one transaction id only the earliest is kept, whether the other is on a day of this
-- run or on a kept day up to ${attribution_window_days} days (the attribution window) before them. `revenue` is
-- the purchase's ecommerce.purchase_revenue, from GA4 only (never from a chat event).
-- partition by: export_day
-- cluster by: ga_client_id, event_name
-- replaces: export_day IN UNNEST(ga4_days)
-- (CONCAT or FORMAT in a statement that reads the wildcard table leave the local BigQuery unable to bind it:
-- a conversion is known by its client, session, time and name instead of an id made of them.)
WITH exported AS (
  SELECT
    PARSE_DATE('%Y%m%d', RIGHT(e._TABLE_SUFFIX, 8)) AS export_day,
    e.event_timestamp,
    e.event_name,
    IF(e.event_name = 'purchase' AND e.ecommerce.transaction_id NOT IN ('', '(not set)'), e.ecommerce.transaction_id, NULL)
      AS transaction_id,
    IF(e.event_name = 'purchase', e.ecommerce.purchase_revenue, NULL) AS revenue,
    e.user_pseudo_id AS ga_client_id,
    p.value.int_value AS ga_session_id
  FROM `${ga4_export}.events_*` AS e
  CROSS JOIN UNNEST(e.event_params) AS p
  WHERE e._TABLE_SUFFIX IN UNNEST(ga4_suffixes)
    AND p.key = 'ga_session_id'
    AND p.value.int_value IS NOT NULL
    AND e.user_pseudo_id IS NOT NULL
    AND e.event_name IN UNNEST(ga4_conversion_events)
),

hits AS (
  SELECT
    export_day,
    TIMESTAMP_MICROS(event_timestamp) AS conversion_ts,
    event_name,
    transaction_id,
    revenue,
    ga_client_id,
    ga_session_id
  FROM exported
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
