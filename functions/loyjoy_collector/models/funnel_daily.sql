-- The chat funnel per day and process, for every day whose sessions this run rebuilt: sessions that reached
-- each step, and the rate from step to step. A step counts when its event happened in the session.
-- partition by: day
-- cluster by: bot_id, process_id
-- replaces: day IN UNNEST(session_days) OR (whole AND day BETWEEN DATE_SUB(first_day, INTERVAL 1 DAY) AND DATE_ADD(last_day, INTERVAL 1 DAY))
SELECT
  day,
  bot_id,
  process_id,
  MAX(process_name) AS process_name,
  COUNT(*) AS sessions,
  COUNTIF(loaded) AS loaded,
  COUNTIF(shown) AS shown,
  COUNTIF(opened) AS opened,
  COUNTIF(started) AS started,
  COUNTIF(signed_up) AS signed_up,
  COUNTIF(opted_in) AS opted_in,
  SAFE_DIVIDE(COUNTIF(shown), COUNTIF(loaded)) AS show_rate,
  SAFE_DIVIDE(COUNTIF(opened), COUNTIF(shown)) AS open_rate,
  SAFE_DIVIDE(COUNTIF(started), COUNTIF(opened)) AS start_rate,
  SAFE_DIVIDE(COUNTIF(signed_up), COUNTIF(started)) AS sign_up_rate,
  SAFE_DIVIDE(COUNTIF(opted_in), COUNTIF(started)) AS opt_in_rate,
  SAFE_DIVIDE(COUNTIF(signed_up OR opted_in), COUNTIF(loaded)) AS conversion_rate
FROM `${project}.${dataset}.sessions`
WHERE day IN UNNEST(session_days)
GROUP BY day, bot_id, process_id
