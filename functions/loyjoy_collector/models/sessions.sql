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
    LOGICAL_OR(event_name = 'close') AS closed,
    ARRAY_AGG(client_id IGNORE NULLS) AS client_ids,
    ARRAY_AGG(bot_id IGNORE NULLS) AS bot_ids,
    ARRAY_AGG(process_id IGNORE NULLS) AS process_ids,
    ARRAY_AGG(process_name IGNORE NULLS) AS process_names,
    ARRAY_AGG(ga_client_id IGNORE NULLS) AS ga_client_ids,
    ARRAY_AGG(ga_session_id IGNORE NULLS) AS ga_session_ids,
    ARRAY_AGG(utm_source IGNORE NULLS) AS utm_sources,
    ARRAY_AGG(utm_medium IGNORE NULLS) AS utm_mediums,
    ARRAY_AGG(utm_campaign IGNORE NULLS) AS utm_campaigns,
    ARRAY_AGG(device_type IGNORE NULLS) AS device_types,
    ARRAY_AGG(page_hostname IGNORE NULLS) AS page_hostnames
  FROM parts
  GROUP BY session_id, part
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
    IF(nth = 1, sent_session_id, CONCAT(sent_session_id, '#', CAST(nth AS STRING))) AS session_id,
    (SELECT v FROM UNNEST(client_ids) AS v GROUP BY v ORDER BY COUNT(*) DESC, v LIMIT 1) AS client_id,
    (SELECT v FROM UNNEST(bot_ids) AS v GROUP BY v ORDER BY COUNT(*) DESC, v LIMIT 1) AS bot_id,
    (SELECT v FROM UNNEST(process_ids) AS v GROUP BY v ORDER BY COUNT(*) DESC, v LIMIT 1) AS process_id,
    (SELECT v FROM UNNEST(process_names) AS v GROUP BY v ORDER BY COUNT(*) DESC, v LIMIT 1) AS process_name,
    started_at,
    ended_at,
    TIMESTAMP_DIFF(ended_at, started_at, SECOND) AS duration_seconds,
    events,
    loaded,
    shown,
    opened,
    started,
    signed_up,
    opted_in,
    closed,
    (SELECT v FROM UNNEST(ga_client_ids) AS v GROUP BY v ORDER BY COUNT(*) DESC, v LIMIT 1) AS ga_client_id,
    (SELECT v FROM UNNEST(ga_session_ids) AS v GROUP BY v ORDER BY COUNT(*) DESC, v LIMIT 1) AS ga_session_id,
    (SELECT v FROM UNNEST(utm_sources) AS v GROUP BY v ORDER BY COUNT(*) DESC, v LIMIT 1) AS utm_source,
    (SELECT v FROM UNNEST(utm_mediums) AS v GROUP BY v ORDER BY COUNT(*) DESC, v LIMIT 1) AS utm_medium,
    (SELECT v FROM UNNEST(utm_campaigns) AS v GROUP BY v ORDER BY COUNT(*) DESC, v LIMIT 1) AS utm_campaign,
    (SELECT v FROM UNNEST(device_types) AS v GROUP BY v ORDER BY COUNT(*) DESC, v LIMIT 1) AS device_type,
    (SELECT v FROM UNNEST(page_hostnames) AS v GROUP BY v ORDER BY COUNT(*) DESC, v LIMIT 1) AS page_hostname,
    sent_session_id
  FROM numbered
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
