-- A/B tests in chat flows: LoyJoy's decision jumps (`jump_decision_1` .. `_7`, the option a session was sent
-- along), read as experiments. A session's assignment is its first option at a jump; the jump is named by the
-- event's sub_process_name (LoyJoy's sub-process; '(main)' without one). Outcomes, reached at or after the
-- assignment in the same session: `opt_in` (a single or double opt-in of any topic), `sign_up` (sign_up or
-- customer_created) and, with GA4's export, `ga4_conversion` (a conversion in the GA4 session the decision event
-- carried). One row per day, bot, process, jump, option and outcome: that day's `sessions` and `reached`, and
-- the same over the trailing 30 days (`sessions_30d`, `reached_30d`, `rate`), against the first option seen
-- in those 30 days (`baseline_option`, its `baseline_rate`): `difference` of the rates with its 95 % interval
-- (`difference_low`, `difference_high`, Wald, unpooled), `z` and the two-sided `p_value` of the two-proportion
-- z-test (pooled). BigQuery has no normal CDF: p = erfc(|z| / sqrt 2) by Abramowitz and Stegun 7.1.26 (absolute
-- error below 1.5e-7), in plain arithmetic that real BigQuery and the local one compute alike. A session counts
-- once per jump and outcome, so no request moves a figure by more than its sessions. Rebuilt from the first day
-- of this run to today (a day's trailing 30 days include the days before it; refresh.sql: experiment_days).
-- partition by: day
-- cluster by: process_id, jump, outcome
-- replaces: day IN UNNEST(experiment_days)
WITH decisions AS (
  SELECT * FROM (
    SELECT
      session_id,
      bot_id,
      process_id,
      IFNULL(sub_process_name, '(main)') AS jump,
      CAST(REGEXP_EXTRACT(event_name, r'^jump_decision_([1-7])$') AS INT64) AS option,
      event_ts AS decided_at,
      ga_client_id,
      ga_session_id
    FROM `${project}.${dataset}.events_clean`
    WHERE DATE(event_ts) BETWEEN DATE_SUB(experiment_first, INTERVAL 1 DAY) AND experiment_last
      AND session_id IS NOT NULL
      AND REGEXP_CONTAINS(event_name, r'^jump_decision_[1-7]$')
    QUALIFY ROW_NUMBER() OVER (PARTITION BY session_id, IFNULL(sub_process_name, '(main)') ORDER BY event_ts, event_id) = 1
  )
  WHERE DATE(decided_at) IN UNNEST(experiment_days)
),

reached AS (
  SELECT
    d.session_id,
    d.jump,
    LOGICAL_OR(REGEXP_CONTAINS(e.event_name, r'^(newsletter|profiling|reminder)_(single|double)_opt_in$')) AS opted_in,
    LOGICAL_OR(e.event_name IN ('sign_up', 'customer_created')) AS signed_up
  FROM decisions AS d
  INNER JOIN `${project}.${dataset}.events_clean` AS e
    ON e.session_id = d.session_id AND e.event_ts >= d.decided_at
  WHERE DATE(e.event_ts) BETWEEN experiment_first AND DATE_ADD(experiment_last, INTERVAL 1 DAY)
  GROUP BY d.session_id, d.jump
),

converted AS (
  SELECT DISTINCT d.session_id, d.jump
  FROM decisions AS d
  INNER JOIN ${ga4_conversions} AS c
    ON c.ga_client_id = d.ga_client_id AND c.ga_session_id = d.ga_session_id AND c.conversion_ts >= d.decided_at
  WHERE c.export_day BETWEEN DATE_SUB(experiment_first, INTERVAL 1 DAY) AND DATE_ADD(experiment_last, INTERVAL 2 DAY)
),

assigned AS (
  SELECT
    DATE(d.decided_at) AS day,
    d.bot_id,
    d.process_id,
    d.jump,
    d.option,
    IFNULL(r.opted_in, FALSE) AS opted_in,
    IFNULL(r.signed_up, FALSE) AS signed_up,
    c.session_id IS NOT NULL AS ga4_converted
  FROM decisions AS d
  LEFT JOIN reached AS r USING (session_id, jump)
  LEFT JOIN converted AS c USING (session_id, jump)
),

daily AS (
  SELECT day, bot_id, process_id, jump, option, 'opt_in' AS outcome, COUNT(*) AS sessions, SUM(IF(opted_in, 1, 0)) AS reached
  FROM assigned GROUP BY day, bot_id, process_id, jump, option
  UNION ALL
  SELECT day, bot_id, process_id, jump, option, 'sign_up', COUNT(*), SUM(IF(signed_up, 1, 0))
  FROM assigned GROUP BY day, bot_id, process_id, jump, option
  UNION ALL
  SELECT day, bot_id, process_id, jump, option, 'ga4_conversion', COUNT(*), SUM(IF(ga4_converted, 1, 0))
  FROM assigned WHERE ${ga4} GROUP BY day, bot_id, process_id, jump, option
  UNION ALL
  -- the kept days of the trailing window, as earlier runs counted them
  SELECT day, bot_id, process_id, jump, option, outcome, sessions, reached
  FROM `${project}.${dataset}.experiments`
  WHERE day BETWEEN DATE_SUB(experiment_first, INTERVAL 29 DAY) AND DATE_SUB(experiment_first, INTERVAL 1 DAY)
    AND day NOT IN UNNEST(experiment_days)
),

trailing AS (
  SELECT
    g AS day,
    k.bot_id,
    k.process_id,
    k.jump,
    k.option,
    k.outcome,
    SUM(IF(k.day = g, k.sessions, 0)) AS sessions,
    SUM(IF(k.day = g, k.reached, 0)) AS reached,
    SUM(k.sessions) AS sessions_30d,
    SUM(k.reached) AS reached_30d
  FROM (SELECT CAST(d AS DATE) AS g FROM UNNEST(experiment_days) AS d)  -- (CAST: as in refresh.sql)
  INNER JOIN daily AS k ON k.day BETWEEN DATE_SUB(g, INTERVAL 29 DAY) AND g
  GROUP BY g, k.bot_id, k.process_id, k.jump, k.option, k.outcome
),

compared AS (
  SELECT
    t.*,
    t.reached_30d / t.sessions_30d AS rate,
    FIRST_VALUE(t.option) OVER (PARTITION BY t.day, t.bot_id, t.process_id, t.jump, t.outcome ORDER BY t.option) AS baseline_option,
    FIRST_VALUE(t.sessions_30d) OVER (PARTITION BY t.day, t.bot_id, t.process_id, t.jump, t.outcome ORDER BY t.option) AS n1,
    FIRST_VALUE(t.reached_30d) OVER (PARTITION BY t.day, t.bot_id, t.process_id, t.jump, t.outcome ORDER BY t.option) AS x1
  FROM trailing AS t
  WHERE t.sessions_30d > 0
),

tested AS (
  SELECT
    c.*,
    c.x1 / c.n1 AS baseline_rate,
    c.rate - c.x1 / c.n1 AS difference,
    -- unpooled standard error for the interval, pooled for the test
    SQRT(c.rate * (1 - c.rate) / c.sessions_30d + (c.x1 / c.n1) * (1 - c.x1 / c.n1) / c.n1) AS se,
    IF(
      c.option = c.baseline_option,
      NULL,
      SAFE_DIVIDE(
        c.rate - c.x1 / c.n1,
        SQRT(
          ((c.x1 + c.reached_30d) / (c.n1 + c.sessions_30d)) * (1 - (c.x1 + c.reached_30d) / (c.n1 + c.sessions_30d))
          * (1 / c.n1 + 1 / c.sessions_30d)
        )
      )
    ) AS z
  FROM compared AS c
)

SELECT
  day,
  bot_id,
  process_id,
  jump,
  option,
  outcome,
  sessions,
  reached,
  sessions_30d,
  reached_30d,
  rate,
  baseline_option,
  baseline_rate,
  difference,
  IF(option = baseline_option, NULL, difference - 1.959963984540054 * se) AS difference_low,
  IF(option = baseline_option, NULL, difference + 1.959963984540054 * se) AS difference_high,
  z,
  -- erfc(x) ~ t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) exp(-x^2), t = 1 / (1 + 0.3275911 x), x = |z| / sqrt 2
  (1 / (1 + 0.3275911 * ABS(z) / SQRT(2))) * (
    0.254829592 + (1 / (1 + 0.3275911 * ABS(z) / SQRT(2))) * (
      -0.284496736 + (1 / (1 + 0.3275911 * ABS(z) / SQRT(2))) * (
        1.421413741 + (1 / (1 + 0.3275911 * ABS(z) / SQRT(2))) * (
          -1.453152027 + (1 / (1 + 0.3275911 * ABS(z) / SQRT(2))) * 1.061405429
        )
      )
    )
  ) * EXP(-z * z / 2) AS p_value
FROM tested
