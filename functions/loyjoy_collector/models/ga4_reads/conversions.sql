-- GA4's conversion events (the setting ga4_conversion_events) in the export tables of this run, one row per hit,
-- as ga4_conversions reads them from ga4_conversion_hits_this_run (column for column, in this order). Like
-- ga4_session_days.sql, a SELECT over the export tables whose suffixes refresh.sql writes into its text in place
-- of the slot in the WHERE clause, some tables at a time; what holds for one hit across tables (a purchase counted
-- once per transaction id) is ga4_conversions' to decide, over all of them.
-- (The text is run by EXECUTE IMMEDIATE and so names no script variable: everything in it is a literal.)
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
WHERE e._TABLE_SUFFIX IN ({{ga4_suffixes}})
  AND p.key = 'ga_session_id'
  AND p.value.int_value IS NOT NULL
  AND e.user_pseudo_id IS NOT NULL
  AND e.event_name IN UNNEST(${ga4_conversion_events})
