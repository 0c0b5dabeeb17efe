-- The chat funnel per day and process, for every day whose sessions this run rebuilt and every day of this run
-- (whose daily_ids may have changed): sessions that reached each step, and the rate from step to step. A step
-- counts only in a session that reached the step before it (loaded, then shown, opened, started, then signed up
-- or opted in), so every count is at most the one before and every rate is between 0 and 1, whatever a sender's
-- sessions skip. The sessions table keeps what each session did, step by step. Bots and processes past the
-- day's ids_per_day are counted under '(other)', and a process is named as daily_ids names it that day (its most
-- frequent name), so that one session cannot rename a process.
-- partition by: day
-- cluster by: bot_id, process_id
-- replaces: day IN UNNEST(session_days) OR (whole AND day BETWEEN DATE_SUB(first_day, INTERVAL 1 DAY) AND DATE_ADD(last_day, INTERVAL 1 DAY))
WITH steps AS (
  SELECT
    s.day,
    IF(s.bot_id IS NULL OR IFNULL(b.kept, TRUE), s.bot_id, '(other)') AS bot_id,
    IF(s.process_id IS NULL OR IFNULL(p.kept, TRUE), s.process_id, '(other)') AS process_id,
    IF(p.kept, p.name, NULL) AS process_name,
    s.loaded,
    s.loaded AND s.shown AS shown,
    s.loaded AND s.shown AND s.opened AS opened,
    s.loaded AND s.shown AND s.opened AND s.started AS started,
    s.loaded AND s.shown AND s.opened AND s.started AND s.signed_up AS signed_up,
    s.loaded AND s.shown AND s.opened AND s.started AND s.opted_in AS opted_in
  FROM `${project}.${dataset}.sessions` AS s
  LEFT JOIN `${project}.${dataset}.daily_ids` AS b
    ON b.day = s.day AND b.dimension = 'bot_id' AND b.id = s.bot_id
  LEFT JOIN `${project}.${dataset}.daily_ids` AS p
    ON p.day = s.day AND p.dimension = 'process_id' AND p.id = s.process_id
  WHERE s.day IN UNNEST(session_days)
)

-- The rates divide the counts in a query of their own, as IF(... = 0, NULL, a / b): the local BigQuery's
-- SAFE_DIVIDE returned NULL for 0 / 1 here (over the joined steps), where BigQuery gives 0.
SELECT
  * EXCEPT (converted),
  IF(loaded = 0, NULL, shown / loaded) AS show_rate,
  IF(shown = 0, NULL, opened / shown) AS open_rate,
  IF(opened = 0, NULL, started / opened) AS start_rate,
  IF(started = 0, NULL, signed_up / started) AS sign_up_rate,
  IF(started = 0, NULL, opted_in / started) AS opt_in_rate,
  IF(loaded = 0, NULL, converted / loaded) AS conversion_rate
FROM (
  SELECT
    day,
    bot_id,
    process_id,
    MAX(process_name) AS process_name,  -- one name per process and day (daily_ids): the same on every row
    COUNT(*) AS sessions,
    COUNTIF(loaded) AS loaded,
    COUNTIF(shown) AS shown,
    COUNTIF(opened) AS opened,
    COUNTIF(started) AS started,
    COUNTIF(signed_up) AS signed_up,
    COUNTIF(opted_in) AS opted_in,
    COUNTIF(signed_up OR opted_in) AS converted
  FROM steps
  GROUP BY day, bot_id, process_id
)
