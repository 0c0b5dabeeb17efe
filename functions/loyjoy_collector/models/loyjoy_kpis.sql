-- LoyJoy's own KPI tab, per day, bot and process, with LoyJoy's definitions where our events can give them
-- (docs/analytics.md says where they cannot): `chat_starts`, every time the widget is loaded (`load`);
-- `sessions`, chat sessions (the `sessions` table); `sessions_with_conversation`, those in which the visitor
-- interacted (start, session_started, session_interacted); `bounces`, the others; `participations` (events);
-- `new_customers` and the single and double opt-ins per topic, once per session; the Net Promoter Score from
-- `nps_survey_score_0` .. `_10` (no other name counts, so no score is out of 0-10), one answer per session (its
-- last): promoters 9-10, passives 7-8, detractors 0-6, nps = % promoters - % detractors. Bots are left out as
-- in every table (events_clean). Rebuilt for the days of this run, the day before each (a session's NPS answer
-- across midnight) and the days whose sessions changed (refresh.sql: kpi_days).
-- partition by: day
-- cluster by: bot_id, process_id
-- replaces: day IN UNNEST(kpi_days)
WITH events AS (
  SELECT DATE(event_ts) AS day, bot_id, process_id, event_name, event_id, event_ts, COALESCE(session_id, event_id) AS once
  FROM `${project}.${dataset}.events_clean`
  WHERE DATE(event_ts) BETWEEN DATE_SUB(kpi_first, INTERVAL 1 DAY) AND DATE_ADD(kpi_last, INTERVAL 1 DAY)
),

counted AS (
  SELECT
    day,
    bot_id,
    process_id,
    COUNTIF(event_name = 'load') AS chat_starts,
    0 AS sessions,
    0 AS sessions_with_conversation,
    COUNTIF(event_name = 'participation') AS participations,
    COUNT(DISTINCT IF(event_name = 'customer_created', once, NULL)) AS new_customers,
    COUNT(DISTINCT IF(event_name = 'newsletter_single_opt_in', once, NULL)) AS newsletter_single_opt_ins,
    COUNT(DISTINCT IF(event_name = 'newsletter_double_opt_in', once, NULL)) AS newsletter_double_opt_ins,
    COUNT(DISTINCT IF(event_name = 'profiling_single_opt_in', once, NULL)) AS profiling_single_opt_ins,
    COUNT(DISTINCT IF(event_name = 'profiling_double_opt_in', once, NULL)) AS profiling_double_opt_ins,
    COUNT(DISTINCT IF(event_name = 'reminder_single_opt_in', once, NULL)) AS reminder_single_opt_ins,
    COUNT(DISTINCT IF(event_name = 'reminder_double_opt_in', once, NULL)) AS reminder_double_opt_ins,
    0 AS nps_responses,
    0 AS promoters,
    0 AS passives,
    0 AS detractors
  FROM events
  WHERE day IN UNNEST(kpi_days)
  GROUP BY day, bot_id, process_id
),

chat_sessions AS (
  SELECT
    day, bot_id, process_id, 0, COUNT(*), COUNTIF(started), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
  FROM `${project}.${dataset}.sessions`
  WHERE day IN UNNEST(kpi_days)
  GROUP BY day, bot_id, process_id
),

answers AS (
  SELECT day, bot_id, process_id, CAST(REGEXP_EXTRACT(event_name, r'^nps_survey_score_(10|[0-9])$') AS INT64) AS score
  FROM events
  WHERE REGEXP_CONTAINS(event_name, r'^nps_survey_score_(10|[0-9])$')
  QUALIFY ROW_NUMBER() OVER (PARTITION BY once ORDER BY event_ts DESC, event_id DESC) = 1
),

nps AS (
  SELECT
    day, bot_id, process_id, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    COUNT(*), COUNTIF(score >= 9), COUNTIF(score BETWEEN 7 AND 8), COUNTIF(score <= 6)
  FROM answers
  WHERE day IN UNNEST(kpi_days)
  GROUP BY day, bot_id, process_id
)

SELECT
  day,
  bot_id,
  process_id,
  SUM(chat_starts) AS chat_starts,
  SUM(sessions) AS sessions,
  SUM(sessions_with_conversation) AS sessions_with_conversation,
  SUM(sessions) - SUM(sessions_with_conversation) AS bounces,
  SUM(participations) AS participations,
  SUM(new_customers) AS new_customers,
  SUM(newsletter_single_opt_ins) AS newsletter_single_opt_ins,
  SUM(newsletter_double_opt_ins) AS newsletter_double_opt_ins,
  SUM(profiling_single_opt_ins) AS profiling_single_opt_ins,
  SUM(profiling_double_opt_ins) AS profiling_double_opt_ins,
  SUM(reminder_single_opt_ins) AS reminder_single_opt_ins,
  SUM(reminder_double_opt_ins) AS reminder_double_opt_ins,
  SUM(nps_responses) AS nps_responses,
  SUM(promoters) AS promoters,
  SUM(passives) AS passives,
  SUM(detractors) AS detractors,
  100 * SAFE_DIVIDE(SUM(promoters) - SUM(detractors), SUM(nps_responses)) AS nps
FROM (
  SELECT * FROM counted
  UNION ALL SELECT * FROM chat_sessions
  UNION ALL SELECT * FROM nps
)
GROUP BY day, bot_id, process_id
