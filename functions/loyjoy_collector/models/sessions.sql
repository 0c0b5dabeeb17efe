-- One row per chat session: when, how long, how far it got, where the visitor came from. Events without a session
-- id (no analytics consent) are counted in daily_counts, not here.
-- A session is what the snippet means by one: its events with no pause longer than session_timeout_ms (the
-- snippet's own, read from it) between them. A sender's session id that goes quiet for longer and comes back is a
-- new session, and so is one that carries on without such a pause for session_max_hours: no visitor does, and
-- its part is cut at the first full hour past session_max_hours - 1 hours from the start of its run of events,
-- then at every full hour, so no session lasts session_max_hours or more, whatever times a sender makes up.
-- The parts of one sender's id that start on one day are its id, then `<id>#2`, `<id>#3`, ... in the order they
-- start (`sent_session_id` keeps the id as sent; session_id and day name a row).
-- Every rule looks back at most a day from a part's start, and a part ends within a day of it, so a run that
-- reads the sessions of its days from two days before to two days after builds exactly what a full run builds:
-- the parts that start from the day before its first day to the day after its last, of every session id with
-- an event on its days. Labels (process, campaign, device, ...) are each part's most frequent value (ties: the
-- smallest), so that one late event cannot rename a session.
-- partition by: day
-- cluster by: bot_id, process_id
-- replaces: day BETWEEN DATE_SUB(first_day, INTERVAL 1 DAY) AND DATE_ADD(last_day, INTERVAL 1 DAY) AND (whole OR IFNULL(sent_session_id, session_id) IN (SELECT sent_session_id FROM `${project}.${dataset}.sessions_this_run`))
WITH session_events AS (
  SELECT *
  FROM `${project}.${dataset}.events_clean`
  WHERE DATE(event_ts) BETWEEN DATE_SUB(first_day, INTERVAL 2 DAY) AND DATE_ADD(last_day, INTERVAL 2 DAY)
    AND session_id IN (
      SELECT session_id FROM `${project}.${dataset}.events_clean`
      WHERE DATE(event_ts) IN UNNEST(days) AND session_id IS NOT NULL
    )
),

paused AS (
  SELECT
    *,
    LAG(event_ts) OVER (PARTITION BY session_id ORDER BY event_ts, event_id) AS previous_ts
  FROM session_events
),

-- Runs of events without a pause longer than the snippet's.
runs AS (
  SELECT
    *,
    SUM(IF(previous_ts IS NULL OR TIMESTAMP_DIFF(event_ts, previous_ts, MILLISECOND) > session_timeout_ms, 1, 0))
      OVER (PARTITION BY session_id ORDER BY event_ts, event_id ROWS UNBOUNDED PRECEDING) AS run
  FROM paused
),

cuts AS (
  SELECT
    *,
    previous_ts IS NULL
    OR TIMESTAMP_DIFF(event_ts, previous_ts, MILLISECOND) > session_timeout_ms
    OR (
      TIMESTAMP_TRUNC(event_ts, HOUR) > previous_ts
      AND TIMESTAMP_TRUNC(event_ts, HOUR) >= TIMESTAMP_ADD(
        MIN(event_ts) OVER (PARTITION BY session_id, run), INTERVAL session_max_hours - 1 HOUR
      )
    ) AS starts_part
  FROM runs
),

parts AS (
  SELECT
    *,
    SUM(IF(starts_part, 1, 0)) OVER (PARTITION BY session_id ORDER BY event_ts, event_id ROWS UNBOUNDED PRECEDING)
      AS part
  FROM cuts
),

grouped AS (
  SELECT
    session_id AS sent_session_id,
    part,
    MIN(event_ts) AS started_at,
    MAX(event_ts) AS ended_at,
    COUNT(*) AS events,
    LOGICAL_OR(event_name = 'load') AS loaded,
    LOGICAL_OR(event_name = 'show') AS shown,
    LOGICAL_OR(event_name = 'open') AS opened,
    LOGICAL_OR(event_name IN ('start', 'session_started', 'session_interacted')) AS started,
    LOGICAL_OR(event_name IN ('sign_up', 'customer_created')) AS signed_up,
    LOGICAL_OR(REGEXP_CONTAINS(event_name, r'^(newsletter|profiling|reminder)_(single|double)_opt_in$')) AS opted_in,
    LOGICAL_OR(event_name = 'close') AS closed
  FROM parts
  GROUP BY session_id, part
),

-- Each label of a part: its most frequent value among the part's events, ties by the smallest (as text).
-- Counted per value rather than gathered into arrays: a part of a million events stays a million rows.
label_values AS (
  SELECT session_id AS sent_session_id, part, kv.name, kv.value, COUNT(*) AS n
  FROM parts
  CROSS JOIN UNNEST([
    STRUCT('client_id' AS name, client_id AS value),
    STRUCT('bot_id' AS name, bot_id AS value),
    STRUCT('process_id' AS name, process_id AS value),
    STRUCT('process_name' AS name, process_name AS value),
    STRUCT('ga_client_id' AS name, ga_client_id AS value),
    STRUCT('ga_session_id' AS name, CAST(ga_session_id AS STRING) AS value),
    STRUCT('utm_source' AS name, utm_source AS value),
    STRUCT('utm_medium' AS name, utm_medium AS value),
    STRUCT('utm_campaign' AS name, utm_campaign AS value),
    STRUCT('device_type' AS name, device_type AS value),
    STRUCT('page_hostname' AS name, page_hostname AS value)
  ]) AS kv  -- (not `label`: events has a column of that name)
  WHERE kv.value IS NOT NULL
  GROUP BY sent_session_id, part, kv.name, kv.value
),

top_values AS (
  SELECT *
  FROM label_values
  WHERE TRUE
  QUALIFY ROW_NUMBER() OVER (PARTITION BY sent_session_id, part, name ORDER BY n DESC, value) = 1
),

labels AS (
  SELECT
    sent_session_id,
    part,
    MAX(IF(name = 'client_id', value, NULL)) AS client_id,
    MAX(IF(name = 'bot_id', value, NULL)) AS bot_id,
    MAX(IF(name = 'process_id', value, NULL)) AS process_id,
    MAX(IF(name = 'process_name', value, NULL)) AS process_name,
    MAX(IF(name = 'ga_client_id', value, NULL)) AS ga_client_id,
    CAST(MAX(IF(name = 'ga_session_id', value, NULL)) AS INT64) AS ga_session_id,
    MAX(IF(name = 'utm_source', value, NULL)) AS utm_source,
    MAX(IF(name = 'utm_medium', value, NULL)) AS utm_medium,
    MAX(IF(name = 'utm_campaign', value, NULL)) AS utm_campaign,
    MAX(IF(name = 'device_type', value, NULL)) AS device_type,
    MAX(IF(name = 'page_hostname', value, NULL)) AS page_hostname
  FROM top_values
  GROUP BY sent_session_id, part
),

numbered AS (
  SELECT
    *,
    ROW_NUMBER() OVER (PARTITION BY sent_session_id, DATE(started_at) ORDER BY started_at) AS nth
  FROM grouped
  WHERE DATE(started_at) BETWEEN DATE_SUB(first_day, INTERVAL 1 DAY) AND DATE_ADD(last_day, INTERVAL 1 DAY)
),

labelled AS (
  SELECT
    IF(n.nth = 1, n.sent_session_id, CONCAT(n.sent_session_id, '#', CAST(n.nth AS STRING))) AS session_id,
    l.client_id,
    l.bot_id,
    l.process_id,
    l.process_name,
    n.started_at,
    n.ended_at,
    TIMESTAMP_DIFF(n.ended_at, n.started_at, SECOND) AS duration_seconds,
    n.events,
    n.loaded,
    n.shown,
    n.opened,
    n.started,
    n.signed_up,
    n.opted_in,
    n.closed,
    l.ga_client_id,
    l.ga_session_id,
    l.utm_source,
    l.utm_medium,
    l.utm_campaign,
    l.device_type,
    l.page_hostname,
    n.sent_session_id
  FROM numbered AS n
  LEFT JOIN labels AS l USING (sent_session_id, part)
)

SELECT
  * EXCEPT (sent_session_id),
  DATE(started_at) AS day,
  CASE
    WHEN signed_up THEN 'signed_up'
    WHEN opted_in THEN 'opted_in'
    WHEN started THEN 'engaged'
    WHEN opened THEN 'opened'
    ELSE 'seen'
  END AS outcome,
  sent_session_id  -- added later: at the end, where refresh.sql adds it to a table built before it
FROM labelled
