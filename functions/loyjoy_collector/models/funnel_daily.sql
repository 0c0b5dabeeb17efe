-- The chat funnel per day and process, for every day whose sessions this run rebuilt: sessions that reached
-- each step, and the rate from step to step. A step counts only in a session that reached the step before it
-- (loaded, then shown, opened, started, then signed up or opted in), so every count is at most the one before
-- and every rate is between 0 and 1, whatever a sender's sessions skip. The sessions table keeps what each
-- session did, step by step. The process name is the most frequent among the day's sessions of the process
-- (ties: the smallest), so that one session cannot rename a process for the day.
-- partition by: day
-- cluster by: bot_id, process_id
-- replaces: day IN UNNEST(session_days) OR (whole AND day BETWEEN DATE_SUB(first_day, INTERVAL 1 DAY) AND DATE_ADD(last_day, INTERVAL 1 DAY))
WITH steps AS (
  SELECT
    day,
    bot_id,
    process_id,
    process_name,
    loaded,
    loaded AND shown AS shown,
    loaded AND shown AND opened AS opened,
    loaded AND shown AND opened AND started AS started,
    loaded AND shown AND opened AND started AND signed_up AS signed_up,
    loaded AND shown AND opened AND started AND opted_in AS opted_in,
    FIRST_VALUE(process_name) OVER (
      PARTITION BY day, bot_id, process_id
      ORDER BY process_name IS NULL, name_sessions DESC, process_name
      ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
    ) AS day_process_name
  FROM (
    SELECT *, COUNT(*) OVER (PARTITION BY day, bot_id, process_id, process_name) AS name_sessions
    FROM `${project}.${dataset}.sessions`
    WHERE day IN UNNEST(session_days)
  )
)

SELECT
  day,
  bot_id,
  process_id,
  ANY_VALUE(day_process_name) AS process_name,
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
FROM steps
GROUP BY day, bot_id, process_id
