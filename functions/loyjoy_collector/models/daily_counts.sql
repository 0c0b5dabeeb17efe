-- Events per day, bot, process and event name, for the days of this run: the table behind most charts. The
-- process name is the most frequent among the day's events of the process (ties: the smallest), the same on
-- every row of the process and day, so that one late event cannot rename a process for the day.
-- partition by: day
-- cluster by: bot_id, process_id, event_name
-- replaces: day IN UNNEST(days)
WITH named AS (
  SELECT
    *,
    FIRST_VALUE(process_name) OVER (
      PARTITION BY day, bot_id, process_id
      ORDER BY process_name IS NULL, name_events DESC, process_name
      ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
    ) AS day_process_name
  FROM (
    SELECT
      DATE(event_ts) AS day,
      bot_id,
      process_id,
      process_name,
      event_name,
      event_known,
      session_id,
      client_id,
      COUNT(*) OVER (PARTITION BY DATE(event_ts), bot_id, process_id, process_name) AS name_events
    FROM `${project}.${dataset}.events_clean`
    WHERE DATE(event_ts) IN UNNEST(days)
  )
)

SELECT
  day,
  bot_id,
  process_id,
  ANY_VALUE(day_process_name) AS process_name,
  event_name,
  LOGICAL_OR(event_known) AS event_known,
  COUNT(*) AS events,
  COUNT(DISTINCT session_id) AS sessions,
  COUNT(DISTINCT client_id) AS clients
FROM named
GROUP BY day, bot_id, process_id, event_name
