-- Events per day, bot, process and event name, for the days of this run: the table behind most charts. Bots and
-- processes past the day's ids_per_day (daily_ids) are counted under '(other)', so no sender adds groups without
-- bound. The process name is the one daily_ids gives the process that day (its most frequent), so that one late
-- event cannot rename a process for the day.
-- partition by: day
-- cluster by: bot_id, process_id, event_name
-- replaces: day IN UNNEST(days)
WITH mapped AS (
  SELECT
    DATE(e.event_ts) AS day,
    IF(e.bot_id IS NULL OR IFNULL(b.kept, TRUE), e.bot_id, '(other)') AS bot_id,
    IF(e.process_id IS NULL OR IFNULL(p.kept, TRUE), e.process_id, '(other)') AS process_id,
    IF(p.kept, p.name, NULL) AS process_name,
    e.event_name,
    e.event_known,
    e.session_id,
    e.client_id
  FROM `${project}.${dataset}.events_clean` AS e
  LEFT JOIN `${project}.${dataset}.daily_ids` AS b
    ON b.day = DATE(e.event_ts) AND b.dimension = 'bot_id' AND b.id = e.bot_id
  LEFT JOIN `${project}.${dataset}.daily_ids` AS p
    ON p.day = DATE(e.event_ts) AND p.dimension = 'process_id' AND p.id = e.process_id
  WHERE DATE(e.event_ts) IN UNNEST(days)
)

SELECT
  day,
  bot_id,
  process_id,
  MAX(process_name) AS process_name,  -- one name per process and day (daily_ids): the same on every row
  event_name,
  LOGICAL_OR(event_known) AS event_known,
  COUNT(*) AS events,
  COUNT(DISTINCT session_id) AS sessions,
  COUNT(DISTINCT client_id) AS clients
FROM mapped
GROUP BY day, bot_id, process_id, event_name
