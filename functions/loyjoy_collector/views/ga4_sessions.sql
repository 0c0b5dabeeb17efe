-- Chat sessions joined to the GA4 sessions they happened in, by GA4 client id (user_pseudo_id) and session id
-- (event_params.ga_session_id). Only created when a GA4 export dataset is configured. Reads the collector's own
-- tables (sessions, and ga4_visits, which the refresh builds incrementally from the export): nothing here reads
-- the GA4 export itself. Filter on `day` (the chat session's) to read only those days of sessions.
SELECT
  s.*,
  g.ga4_session_start IS NOT NULL AS ga4_matched,
  g.ga4_session_start,
  g.ga4_events,
  g.ga4_page_views,
  g.ga4_purchases,
  g.conversions AS ga4_conversions,
  g.revenue AS ga4_revenue,
  g.source AS ga4_source,
  g.medium AS ga4_medium,
  g.ga4_first_user_source,
  g.ga4_first_user_medium
FROM `${project}.${dataset}.sessions` AS s
LEFT JOIN `${project}.${dataset}.ga4_visits` AS g
  ON s.ga_client_id = g.ga_client_id AND s.ga_session_id = g.ga_session_id
