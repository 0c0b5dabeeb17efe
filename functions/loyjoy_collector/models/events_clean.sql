-- Every event once, for the days of this run (insertAll's insertId dedup is best-effort, and the snippet sends
-- again what a page could not confirm). `loyjoy-collector check`'s test events are left out, and so are bots
-- unless the run's include_bots is set (rows older than the is_bot column go by ua-parser's device_type = 'bot').
-- Every other table reads this one, so this is the one filter.
-- Copies of an event_id are one event when their event days are at most copy_days apart (a copy the snippet
-- sends again has the same client time): the copy received first counts, then the earliest time, then, among
-- copies received at once, the one whose row sorts first (any, then: they are alike). An id sent again with a
-- time further away counts again. Each row's fate depends only on the copies copy_days around its day, so a
-- run that reads those builds exactly what a full run builds, whenever its runs happen.
-- Partitioned by day of event_ts, like `events`: a report on 30 days reads 30 partitions.
-- partition by: DATE(event_ts)
-- cluster by: bot_id, process_id, event_name
-- replaces: DATE(event_ts) IN UNNEST(days)
WITH candidates AS (
  SELECT *
  FROM `${project}.${dataset}.events` AS e
  WHERE DATE(event_ts) IN UNNEST(days)
    AND event_name != 'collector_check'
    AND (include_bots OR NOT COALESCE(is_bot, device_type = 'bot', FALSE))
  QUALIFY ROW_NUMBER() OVER (
    PARTITION BY event_id, DATE(event_ts) ORDER BY received_at, event_ts, TO_JSON_STRING(e)
  ) = 1
),

-- The first copy of each of those events on each day near its own.
near AS (
  SELECT event_id, DATE(event_ts) AS day, received_at, event_ts
  FROM `${project}.${dataset}.events`
  WHERE DATE(event_ts) BETWEEN DATE_SUB(first_day, INTERVAL copy_days DAY) AND DATE_ADD(last_day, INTERVAL copy_days DAY)
    AND event_name != 'collector_check'
    AND (include_bots OR NOT COALESCE(is_bot, device_type = 'bot', FALSE))
    AND event_id IN (SELECT event_id FROM candidates)
  QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id, DATE(event_ts) ORDER BY received_at, event_ts) = 1
)

SELECT c.*
FROM candidates AS c
LEFT JOIN near AS n
  ON n.event_id = c.event_id
  AND n.day != DATE(c.event_ts)
  AND ABS(DATE_DIFF(n.day, DATE(c.event_ts), DAY)) <= copy_days
  AND (n.received_at < c.received_at OR (n.received_at = c.received_at AND n.event_ts < c.event_ts))
WHERE n.event_id IS NULL
