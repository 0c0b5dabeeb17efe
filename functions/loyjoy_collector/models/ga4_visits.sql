-- requires: ga4_export_dataset
-- One row per GA4 session (user_pseudo_id, ga_session_id), rebuilt for every session with a row on an export day
-- of this run, from all its rows in ga4_session_days and ga4_conversions (a day either side: a session that
-- crosses midnight). Its `day` is the UTC date of its first event. Conversions are ga4_conversions' (a
-- transaction once); `revenue` their purchase revenue. Was a view over the whole export until issue 25.
-- partition by: day
-- cluster by: ga_client_id
-- replaces: day BETWEEN DATE_SUB(ga4_first, INTERVAL 2 DAY) AND DATE_ADD(ga4_last, INTERVAL 2 DAY) AND ga4_session_key IN (SELECT ga4_session_key FROM `${project}.${dataset}.ga4_visits_this_run`)
WITH touched AS (
  SELECT ga_client_id, ga_session_id FROM `${project}.${dataset}.ga4_session_days` WHERE export_day IN UNNEST(ga4_days)
  UNION DISTINCT
  SELECT ga_client_id, ga_session_id FROM `${project}.${dataset}.ga4_conversions` WHERE export_day IN UNNEST(ga4_days)
),

parts AS (
  SELECT d.*
  FROM `${project}.${dataset}.ga4_session_days` AS d
  INNER JOIN touched USING (ga_client_id, ga_session_id)
  WHERE d.export_day BETWEEN DATE_SUB(ga4_first, INTERVAL 1 DAY) AND DATE_ADD(ga4_last, INTERVAL 1 DAY)
),

converted AS (
  SELECT
    ga_client_id,
    ga_session_id,
    COUNT(*) AS conversions,
    SUM(IF(c.event_name = 'purchase', 1, 0)) AS purchases,
    SUM(c.revenue) AS revenue
  FROM `${project}.${dataset}.ga4_conversions` AS c
  INNER JOIN touched USING (ga_client_id, ga_session_id)
  WHERE c.export_day BETWEEN DATE_SUB(ga4_first, INTERVAL 1 DAY) AND DATE_ADD(ga4_last, INTERVAL 1 DAY)
  GROUP BY ga_client_id, ga_session_id
),

sessions AS (
  SELECT
    ga_client_id,
    ga_session_id,
    MIN(first_ts) AS ga4_session_start,
    MAX(last_ts) AS ga4_session_end,
    SUM(events) AS ga4_events,
    SUM(page_views) AS ga4_page_views,
    ARRAY_AGG(device_category IGNORE NULLS ORDER BY first_ts)[SAFE_OFFSET(0)] AS device_category,
    ARRAY_AGG(source IGNORE NULLS ORDER BY first_ts)[SAFE_OFFSET(0)] AS source,
    ARRAY_AGG(medium IGNORE NULLS ORDER BY first_ts)[SAFE_OFFSET(0)] AS medium,
    ARRAY_AGG(campaign IGNORE NULLS ORDER BY first_ts)[SAFE_OFFSET(0)] AS campaign,
    ARRAY_AGG(first_user_source IGNORE NULLS ORDER BY first_ts)[SAFE_OFFSET(0)] AS ga4_first_user_source,
    ARRAY_AGG(first_user_medium IGNORE NULLS ORDER BY first_ts)[SAFE_OFFSET(0)] AS ga4_first_user_medium,
    LOGICAL_OR(from_intraday) AS from_intraday
  FROM parts
  GROUP BY ga_client_id, ga_session_id
)

SELECT
  DATE(s.ga4_session_start) AS day,
  CONCAT(s.ga_client_id, ':', CAST(s.ga_session_id AS STRING)) AS ga4_session_key,
  s.ga_client_id,
  s.ga_session_id,
  s.ga4_session_start,
  s.ga4_session_end,
  s.ga4_events,
  s.ga4_page_views,
  IFNULL(s.device_category, '(not set)') AS device_category,
  IFNULL(s.source, '(direct)') AS source,
  IFNULL(s.medium, '(none)') AS medium,
  s.campaign,
  IFNULL(c.conversions, 0) AS conversions,
  IFNULL(c.purchases, 0) AS ga4_purchases,
  IFNULL(c.revenue, 0) AS revenue,
  s.ga4_first_user_source,
  s.ga4_first_user_medium,
  s.from_intraday
FROM sessions AS s
LEFT JOIN converted AS c USING (ga_client_id, ga_session_id)
