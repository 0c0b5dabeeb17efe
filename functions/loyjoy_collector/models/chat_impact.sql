-- requires: ga4_export_dataset
-- Did visitors who chatted convert more? Every GA4 session of a day (ga4_visits), split by device category,
-- the session's source and medium, and whether it `chatted`: a chat event carried its ga_client_id and
-- ga_session_id (on the session's day or the next, for a session across midnight). A chat event is one the
-- snippet sent (protocol loyjoy) or a known LoyJoy event, and never a bot's (whatever include_bots says): an event
-- marks the one GA4 session it names, and only one that GA4 has. Conversions and revenue are GA4's
-- (ga4_conversions: each transaction once), so no chat event can add to them. Rebuilt for the days whose GA4
-- sessions changed and the days whose chats did (refresh.sql: impact_days).
-- partition by: day
-- cluster by: device_category, source, medium
-- replaces: day IN UNNEST(impact_days)
WITH chats AS (
  SELECT DISTINCT ga_client_id, ga_session_id, DATE(event_ts) AS chat_day
  FROM `${project}.${dataset}.events_clean`
  WHERE DATE(event_ts) BETWEEN impact_first AND DATE_ADD(impact_last, INTERVAL 1 DAY)
    AND ga_client_id IS NOT NULL
    AND ga_session_id IS NOT NULL
    AND (protocol = 'loyjoy' OR event_known)
    AND NOT COALESCE(is_bot, device_type = 'bot', FALSE)
),

visits AS (
  SELECT
    v.day,
    v.device_category,
    v.source,
    v.medium,
    v.conversions,
    v.revenue,
    EXISTS (
      SELECT 1 FROM chats AS c
      WHERE c.ga_client_id = v.ga_client_id AND c.ga_session_id = v.ga_session_id
        AND c.chat_day BETWEEN v.day AND DATE_ADD(v.day, INTERVAL 1 DAY)
    ) AS chatted
  FROM `${project}.${dataset}.ga4_visits` AS v
  WHERE v.day IN UNNEST(impact_days)
)

SELECT
  day,
  device_category,
  source,
  medium,
  chatted,
  COUNT(*) AS ga4_sessions,
  SUM(IF(conversions > 0, 1, 0)) AS converting_sessions,
  SUM(conversions) AS conversions,
  SUM(revenue) AS revenue,
  SAFE_DIVIDE(SUM(IF(conversions > 0, 1, 0)), COUNT(*)) AS conversion_rate
FROM visits
GROUP BY day, device_category, source, medium, chatted
