-- Every event once, for the days of this run: the first copy of each event_id (insertAll's insertId dedup is
-- best-effort, and the snippet sends again what a page could not confirm). `loyjoy-collector check`'s test
-- events are left out, and so are bots unless the run's include_bots is set (rows older than the is_bot
-- column go by ua-parser's device_type = 'bot'). Every other table reads this one, so this is the one filter.
-- Partitioned by day of event_ts, like `events`: a report on 30 days reads 30 partitions.
-- partition by: DATE(event_ts)
-- cluster by: bot_id, process_id, event_name
-- replaces: DATE(event_ts) IN UNNEST(days)
SELECT *
FROM `${project}.${dataset}.events`
WHERE DATE(event_ts) IN UNNEST(days)
  AND event_name != 'collector_check'
  AND (include_bots OR NOT COALESCE(is_bot, device_type = 'bot', FALSE))
QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY received_at) = 1
