-- Events per day, bot, process and event name, for the days of this run: the table behind most charts.
-- partition by: day
-- cluster by: bot_id, process_id, event_name
-- replaces: day IN UNNEST(days)
SELECT
  DATE(event_ts) AS day,
  bot_id,
  process_id,
  MAX(process_name) AS process_name,
  event_name,
  LOGICAL_OR(event_known) AS event_known,
  COUNT(*) AS events,
  COUNT(DISTINCT session_id) AS sessions,
  COUNT(DISTINCT client_id) AS clients
FROM `${project}.${dataset}.events_clean`
WHERE DATE(event_ts) IN UNNEST(days)
GROUP BY day, bot_id, process_id, event_name
