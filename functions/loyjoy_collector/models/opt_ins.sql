-- Consent events per day and process, for the days of this run: topic (newsletter, profiling, reminder) and
-- step (single_opt_in, double_opt_in, opt_out, asked, rejected). `people` counts distinct e-mail hashes (the
-- collector's own keyed hashes: a sender cannot set one). Bots and processes past the day's ids_per_day
-- (daily_ids) are counted under '(other)'.
-- partition by: day
-- cluster by: bot_id, process_id, topic
-- replaces: day IN UNNEST(days)
WITH mapped AS (
  SELECT
    DATE(e.event_ts) AS day,
    IF(e.bot_id IS NULL OR IFNULL(b.kept, TRUE), e.bot_id, '(other)') AS bot_id,
    IF(e.process_id IS NULL OR IFNULL(p.kept, TRUE), e.process_id, '(other)') AS process_id,
    e.event_name,
    e.session_id,
    e.email_hash
  FROM `${project}.${dataset}.events_clean` AS e
  LEFT JOIN `${project}.${dataset}.daily_ids` AS b
    ON b.day = DATE(e.event_ts) AND b.dimension = 'bot_id' AND b.id = e.bot_id
  LEFT JOIN `${project}.${dataset}.daily_ids` AS p
    ON p.day = DATE(e.event_ts) AND p.dimension = 'process_id' AND p.id = e.process_id
  WHERE DATE(e.event_ts) IN UNNEST(days)
    AND REGEXP_CONTAINS(e.event_name, r'^(newsletter|profiling|reminder)_(single_opt_in|double_opt_in|opt_out|asked|rejected)$')
)

SELECT
  day,
  bot_id,
  process_id,
  REGEXP_EXTRACT(event_name, r'^(newsletter|profiling|reminder)_') AS topic,
  REGEXP_EXTRACT(event_name, r'^(?:newsletter|profiling|reminder)_(.+)$') AS step,
  COUNT(*) AS events,
  COUNT(DISTINCT session_id) AS sessions,
  COUNT(DISTINCT email_hash) AS people
FROM mapped
GROUP BY day, bot_id, process_id, topic, step
