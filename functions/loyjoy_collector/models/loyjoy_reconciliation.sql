-- The collector's counts beside LoyJoy's own, per day, process and event type, from LoyJoy's daily BigQuery export
-- (LOYJOY_EXPORT_DATASET / var.loyjoy_export_dataset: its `facts` and `dimensions` tables). Built only when that
-- dataset is set, for the days of this run and the last three (the export arrives a day late). The mapping
-- assumed, to adjust here if your export differs:
--   - facts.event_type is LoyJoy's event name, compared case-insensitively with events.event_name;
--   - facts.entity_id is the process the event belongs to: dimensions.process_id, which names it;
--   - facts.amount is how many events a fact row counts (summed; a row without amount counts one);
--   - the day is the UTC day of facts.created_at, as the collector's is of event_ts.
-- Only the event types both sides know are compared: those in `shared` below, events LoyJoy's server sees as
-- the widget sends them. A chat event the collector never got shows as collector_events < loyjoy_events
-- (an ad blocker, no consent: the snippet sends nothing without it); bots are left out as in events_clean.
-- partition by: day
-- cluster by: process_id, event_name
-- replaces: day IN UNNEST(reconciled_days)
WITH shared AS (
  SELECT 'load' AS event_name UNION ALL SELECT 'show' UNION ALL SELECT 'open' UNION ALL SELECT 'close'
  UNION ALL SELECT 'session_started' UNION ALL SELECT 'session_interacted'
  UNION ALL SELECT 'sign_up' UNION ALL SELECT 'sign_in' UNION ALL SELECT 'customer_created'
  UNION ALL SELECT 'newsletter_single_opt_in' UNION ALL SELECT 'newsletter_double_opt_in'
  UNION ALL SELECT 'newsletter_opt_out' UNION ALL SELECT 'profiling_single_opt_in'
  UNION ALL SELECT 'reminder_single_opt_in'
),

loyjoy AS (
  SELECT
    DATE(created_at) AS day,
    CAST(entity_id AS STRING) AS process_id,
    LOWER(event_type) AS event_name,
    SUM(IFNULL(amount, 1)) AS loyjoy_events
  FROM `${loyjoy_export}.facts`
  WHERE DATE(created_at) IN UNNEST(reconciled_days)
    AND LOWER(event_type) IN (SELECT event_name FROM shared)
  GROUP BY day, process_id, event_name
),

processes AS (
  SELECT
    CAST(process_id AS STRING) AS process_id,
    MAX(process_name) AS process_name,
    MAX(CAST(bot_id AS STRING)) AS bot_id,
    MAX(bot_name) AS bot_name
  FROM `${loyjoy_export}.dimensions`
  GROUP BY process_id
),

-- Processes past the day's ids_per_day (daily_ids) are counted under '(other)', as in daily_counts.
collector AS (
  SELECT
    day,
    process_id,
    event_name,
    COUNT(*) AS collector_events,
    COUNT(DISTINCT session_id) AS collector_sessions
  FROM (
    SELECT
      DATE(e.event_ts) AS day,
      IF(e.process_id IS NULL OR IFNULL(p.kept, TRUE), e.process_id, '(other)') AS process_id,
      e.event_name,
      e.session_id
    FROM `${project}.${dataset}.events_clean` AS e
    LEFT JOIN `${project}.${dataset}.daily_ids` AS p
      ON p.day = DATE(e.event_ts) AND p.dimension = 'process_id' AND p.id = e.process_id
    WHERE DATE(e.event_ts) IN UNNEST(reconciled_days)
      AND e.event_name IN (SELECT event_name FROM shared)
  )
  GROUP BY day, process_id, event_name
)

SELECT
  day,
  process_id,
  p.process_name,
  p.bot_id,
  p.bot_name,
  event_name,
  IFNULL(c.collector_events, 0) AS collector_events,
  IFNULL(c.collector_sessions, 0) AS collector_sessions,
  IFNULL(l.loyjoy_events, 0) AS loyjoy_events,
  IFNULL(c.collector_events, 0) - IFNULL(l.loyjoy_events, 0) AS difference,
  SAFE_DIVIDE(IFNULL(c.collector_events, 0), l.loyjoy_events) AS coverage
FROM collector AS c
FULL OUTER JOIN loyjoy AS l USING (day, process_id, event_name)
LEFT JOIN processes AS p USING (process_id)
