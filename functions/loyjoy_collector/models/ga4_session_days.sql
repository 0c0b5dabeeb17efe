-- requires: ga4_export_dataset
-- The GA4 export boiled down to one row per export day and GA4 session (user_pseudo_id, ga_session_id): the only
-- part of the export the other GA4 tables read besides the conversions (ga4_reads/conversions.sql). This SELECT
-- reads the export tables whose suffixes refresh.sql writes into its text in place of the slot in the WHERE
-- clause (new days, the last three days that GA4 may still add late hits to, and today's intraday table), as a
-- literal list: a constant filter on the wildcard's table suffix, the one kind BigQuery documents as limiting the
-- tables a wildcard query reads (a script variable or a subquery there is not). A run with many tables reads them
-- some at a time, each statement adding to ga4_session_days_this_run; a table is one export day, so no session
-- day is split between two statements. A session that crosses an export day has a row on each; ga4_visits adds
-- them up.
-- Source and medium are the session's (session_traffic_source_last_click, else the collected_traffic_source of
-- its first hit that has one), never traffic_source, which is the user's first acquisition.
-- (SUM(IF(...)) rather than COUNTIF: the local BigQuery of the tests mis-binds COUNTIF over wildcard tables; a join
-- to UNNEST(event_params) rather than a subquery, which it cannot bind over them either; and ARRAY_AGG(... IGNORE
-- NULLS ORDER BY ...) without LIMIT 1, which it cannot translate with IGNORE NULLS.)
-- partition by: export_day
-- cluster by: ga_client_id
-- replaces: export_day IN UNNEST(ga4_days)
SELECT
  PARSE_DATE('%Y%m%d', RIGHT(e._TABLE_SUFFIX, 8)) AS export_day,
  STARTS_WITH(e._TABLE_SUFFIX, 'intraday_') AS from_intraday,
  e.user_pseudo_id AS ga_client_id,
  p.value.int_value AS ga_session_id,
  TIMESTAMP_MICROS(MIN(e.event_timestamp)) AS first_ts,
  TIMESTAMP_MICROS(MAX(e.event_timestamp)) AS last_ts,
  COUNT(*) AS events,
  SUM(IF(e.event_name = 'page_view', 1, 0)) AS page_views,
  ARRAY_AGG(e.device.category IGNORE NULLS ORDER BY e.event_timestamp)[SAFE_OFFSET(0)] AS device_category,
  ARRAY_AGG(
    COALESCE(e.session_traffic_source_last_click.manual_campaign.source, e.collected_traffic_source.manual_source)
    IGNORE NULLS ORDER BY e.event_timestamp
  )[SAFE_OFFSET(0)] AS source,
  ARRAY_AGG(
    COALESCE(e.session_traffic_source_last_click.manual_campaign.medium, e.collected_traffic_source.manual_medium)
    IGNORE NULLS ORDER BY e.event_timestamp
  )[SAFE_OFFSET(0)] AS medium,
  ARRAY_AGG(
    COALESCE(e.session_traffic_source_last_click.manual_campaign.campaign_name, e.collected_traffic_source.manual_campaign_name)
    IGNORE NULLS ORDER BY e.event_timestamp
  )[SAFE_OFFSET(0)] AS campaign,
  ARRAY_AGG(e.traffic_source.source IGNORE NULLS ORDER BY e.event_timestamp)[SAFE_OFFSET(0)] AS first_user_source,
  ARRAY_AGG(e.traffic_source.medium IGNORE NULLS ORDER BY e.event_timestamp)[SAFE_OFFSET(0)] AS first_user_medium
FROM `${ga4_export}.events_*` AS e
CROSS JOIN UNNEST(e.event_params) AS p
WHERE e._TABLE_SUFFIX IN ({{ga4_suffixes}})
  AND p.key = 'ga_session_id'
  AND p.value.int_value IS NOT NULL
  AND e.user_pseudo_id IS NOT NULL
GROUP BY export_day, from_intraday, ga_client_id, ga_session_id
