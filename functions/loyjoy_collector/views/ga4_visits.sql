-- GA4 sessions from the GA4 BigQuery export, one row per (user_pseudo_id, ga_session_id): the side of
-- ga4_sessions that comes from GA4. Reads the daily and intraday tables from ${ga4_start_suffix} on.
-- (SUM(IF(...)) rather than COUNTIF: the local BigQuery of the tests mis-binds COUNTIF over wildcard tables.)
SELECT
  e.user_pseudo_id AS ga_client_id,
  p.value.int_value AS ga_session_id,
  TIMESTAMP_MICROS(MIN(e.event_timestamp)) AS ga4_session_start,
  COUNT(*) AS ga4_events,
  SUM(IF(e.event_name = 'page_view', 1, 0)) AS ga4_page_views,
  SUM(IF(e.event_name = 'purchase', 1, 0)) AS ga4_purchases,
  MAX(e.traffic_source.source) AS ga4_first_user_source,
  MAX(e.traffic_source.medium) AS ga4_first_user_medium
FROM `${project}.${ga4_dataset}.events_*` AS e, UNNEST(e.event_params) AS p
WHERE e._TABLE_SUFFIX >= '${ga4_start_suffix}' AND p.key = 'ga_session_id'
GROUP BY ga_client_id, ga_session_id
