-- Events per day, bot, process and event name: the table behind most Looker Studio charts.
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
FROM `${project}.${dataset}.events_dedup`
GROUP BY day, bot_id, process_id, event_name
