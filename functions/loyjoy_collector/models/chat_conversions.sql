-- requires: ga4_export_dataset
-- Conversions after a chat: one row per GA4 conversion (ga4_conversions: a transaction once) of a client who
-- chatted at or before it, at most ${attribution_window_days} days before (the attribution window). A chat is
-- counted as in chat_impact (the snippet's or a known LoyJoy event, never a bot's) and is matched by the GA4 client
-- id it carried. `chat_session_id` is the chat session of the latest such chat event, `same_session` whether a
-- chat at or before the conversion carried its own GA4 session, `days_since_chat` the whole days (24 h) since
-- that latest chat. A conversion before any chat is in no row. Rebuilt for the conversions' days of this run's
-- export days and the days a new chat can reach (refresh.sql: conversion_days).
-- partition by: day
-- cluster by: event_name
-- replaces: day IN UNNEST(conversion_days)
WITH chats AS (
  SELECT ga_client_id, ga_session_id, session_id, event_ts
  FROM `${project}.${dataset}.events_clean`
  WHERE DATE(event_ts) BETWEEN DATE_SUB(DATE_SUB(conversion_first, INTERVAL ${attribution_window_days} DAY), INTERVAL 1 DAY)
      AND DATE_ADD(conversion_last, INTERVAL 1 DAY)
    AND ga_client_id IS NOT NULL
    AND (protocol = 'loyjoy' OR event_known)
    AND NOT COALESCE(is_bot, device_type = 'bot', FALSE)
),

conversions AS (
  SELECT *
  FROM `${project}.${dataset}.ga4_conversions`
  WHERE export_day BETWEEN DATE_SUB(conversion_first, INTERVAL 1 DAY) AND DATE_ADD(conversion_last, INTERVAL 1 DAY)
    AND DATE(conversion_ts) IN UNNEST(conversion_days)
)

SELECT
  DATE(c.conversion_ts) AS day,
  c.conversion_ts,
  c.event_name,
  c.transaction_id,
  c.revenue,
  c.ga_client_id,
  c.ga_session_id,
  ARRAY_AGG(h.session_id ORDER BY h.event_ts DESC, h.session_id DESC LIMIT 1)[SAFE_OFFSET(0)] AS chat_session_id,
  LOGICAL_OR(h.ga_session_id = c.ga_session_id) AS same_session,
  -- (whole 24 h periods in seconds: the local BigQuery counts DAY differences as calendar days)
  DIV(TIMESTAMP_DIFF(c.conversion_ts, MAX(h.event_ts), SECOND), 86400) AS days_since_chat
FROM conversions AS c
INNER JOIN chats AS h
  ON h.ga_client_id = c.ga_client_id
  AND h.event_ts <= c.conversion_ts
  AND h.event_ts >= TIMESTAMP_SUB(c.conversion_ts, INTERVAL ${attribution_window_days} DAY)
GROUP BY c.conversion_ts, c.event_name, c.transaction_id, c.revenue, c.ga_client_id, c.ga_session_id
