-- Consent events per day and process, for the days of this run: topic (newsletter, profiling, reminder) and
-- step (single_opt_in, double_opt_in, opt_out, asked, rejected). `people` counts distinct e-mail hashes.
-- partition by: day
-- cluster by: bot_id, process_id, topic
-- replaces: day IN UNNEST(days)
SELECT
  DATE(event_ts) AS day,
  bot_id,
  process_id,
  REGEXP_EXTRACT(event_name, r'^(newsletter|profiling|reminder)_') AS topic,
  REGEXP_EXTRACT(event_name, r'^(?:newsletter|profiling|reminder)_(.+)$') AS step,
  COUNT(*) AS events,
  COUNT(DISTINCT session_id) AS sessions,
  COUNT(DISTINCT email_hash) AS people
FROM `${project}.${dataset}.events_clean`
WHERE DATE(event_ts) IN UNNEST(days)
  AND REGEXP_CONTAINS(event_name, r'^(newsletter|profiling|reminder)_(single_opt_in|double_opt_in|opt_out|asked|rejected)$')
GROUP BY day, bot_id, process_id, topic, step
