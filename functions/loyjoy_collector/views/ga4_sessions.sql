-- Chat sessions joined to the GA4 sessions they happened in (GA4 BigQuery export), by GA4 client id
-- (user_pseudo_id) and session id (event_params.ga_session_id). Only created when a GA4 export dataset is
-- configured. Scans the daily and intraday tables from ${ga4_start_suffix} on: no chat session is
-- older than the collector, so older GA4 days would only cost money.
SELECT
  s.*,
  g.ga4_session_start IS NOT NULL AS ga4_matched,
  g.ga4_session_start,
  g.ga4_events,
  g.ga4_page_views,
  g.ga4_purchases,
  g.ga4_first_user_source,
  g.ga4_first_user_medium
FROM `${project}.${dataset}.sessions` AS s
LEFT JOIN `${project}.${dataset}.ga4_visits` AS g
  ON s.ga_client_id = g.ga_client_id AND s.ga_session_id = g.ga_session_id
