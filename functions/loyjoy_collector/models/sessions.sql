-- One row per chat session: when, how long, how far it got, where the visitor came from. Rebuilt for every
-- session with an event on a day of this run, from all its events: a session that spans midnight (or the
-- edge of the run's days) is read from the day before and after too. Events without a session id (no
-- analytics consent) are counted in daily_counts, not here.
-- partition by: day
-- cluster by: bot_id, process_id
-- replaces: day BETWEEN DATE_SUB(first_day, INTERVAL 1 DAY) AND DATE_ADD(last_day, INTERVAL 1 DAY) AND (whole OR session_id IN (SELECT session_id FROM `${project}.${dataset}.sessions_this_run`))
SELECT
  *,
  DATE(started_at) AS day,
  CASE
    WHEN signed_up THEN 'signed_up'
    WHEN opted_in THEN 'opted_in'
    WHEN started THEN 'engaged'
    WHEN opened THEN 'opened'
    ELSE 'seen'
  END AS outcome
FROM (
  SELECT
    session_id,
    MIN(client_id) AS client_id,
    MIN(bot_id) AS bot_id,
    MIN(process_id) AS process_id,
    MAX(process_name) AS process_name,
    MIN(event_ts) AS started_at,
    MAX(event_ts) AS ended_at,
    TIMESTAMP_DIFF(MAX(event_ts), MIN(event_ts), SECOND) AS duration_seconds,
    COUNT(*) AS events,
    LOGICAL_OR(event_name = 'load') AS loaded,
    LOGICAL_OR(event_name = 'show') AS shown,
    LOGICAL_OR(event_name = 'open') AS opened,
    LOGICAL_OR(event_name IN ('start', 'session_started', 'session_interacted')) AS started,
    LOGICAL_OR(event_name IN ('sign_up', 'customer_created')) AS signed_up,
    LOGICAL_OR(REGEXP_CONTAINS(event_name, r'^(newsletter|profiling|reminder)_(single|double)_opt_in$')) AS opted_in,
    LOGICAL_OR(event_name = 'close') AS closed,
    MAX(ga_client_id) AS ga_client_id,
    MAX(ga_session_id) AS ga_session_id,
    MAX(utm_source) AS utm_source,
    MAX(utm_medium) AS utm_medium,
    MAX(utm_campaign) AS utm_campaign,
    MAX(device_type) AS device_type,
    MAX(page_hostname) AS page_hostname
  FROM `${project}.${dataset}.events_clean`
  WHERE DATE(event_ts) BETWEEN DATE_SUB(first_day, INTERVAL 1 DAY) AND DATE_ADD(last_day, INTERVAL 1 DAY)
    AND session_id IN (
      SELECT session_id FROM `${project}.${dataset}.events_clean`
      WHERE DATE(event_ts) IN UNNEST(days) AND session_id IS NOT NULL
    )
  GROUP BY session_id
)
