-- One refresh of the analyst tables. The same script runs in `loyjoy-collector refresh` and as the BigQuery
-- scheduled query Terraform creates. The run window comes from the manifest: the days that received events
-- since the last run (its watermark, less ${lookback_minutes} minutes for rows still in flight then), plus the
-- last ${recent_days} days. Events are never older than ${max_age_days} days when they arrive (the collector
-- clamps client times), so only that many partitions of `events` are read to find them. Then, per table, the
-- steps of models/upsert/, filled in from models/<table>.sql: `build` makes a `<table>_this_run` scratch table
-- with just those days (and the table itself if missing, partitioned and clustered as the model's header says),
-- `clear` deletes the days the header says it `replaces`, `fill` inserts the scratch rows; `upsert` is the
-- three. Running it twice changes nothing; a first run (empty manifest) builds the whole history. Bots are left
-- out of every table unless ${include_bots} is true (NULL: as the last run did, else false); a run whose choice
-- differs from the last one's rebuilds the whole history, so that no day keeps the other choice.
-- Each table's step runs alone (BEGIN ... EXCEPTION): one that fails is recorded in the manifest's `failures`
-- and leaves the other tables, and the watermark, to go on; its days are the manifest's `pending_days`, which
-- the next run rebuilds whatever it receives. A run with a failed step writes its manifest row and then fails
-- as a whole, with ERROR(), so that the scheduled query's failure raises the refresh alert (infra/monitoring.tf).
DECLARE run_at TIMESTAMP DEFAULT ${run_at};
DECLARE first_run BOOL DEFAULT (SELECT COUNT(*) = 0 FROM `${project}.${dataset}.refresh_manifest`);
DECLARE bots_before BOOL DEFAULT (
  SELECT bots_included FROM `${project}.${dataset}.refresh_manifest` ORDER BY watermark DESC LIMIT 1
);
DECLARE include_bots BOOL DEFAULT IFNULL(${include_bots}, IFNULL(bots_before, FALSE));
-- What the last run left to do: the days of its failed steps, and the late days past its bounded pass.
DECLARE pending_before ARRAY<DATE> DEFAULT IFNULL((
  SELECT pending_days FROM `${project}.${dataset}.refresh_manifest` ORDER BY watermark DESC LIMIT 1
), []);
DECLARE pending_rejected_before ARRAY<DATE> DEFAULT IFNULL((
  SELECT pending_rejected_days FROM `${project}.${dataset}.refresh_manifest` ORDER BY watermark DESC LIMIT 1
), []);
DECLARE whole BOOL DEFAULT first_run OR ${recent_days} >= 36500 OR bots_before IS NULL OR bots_before != include_bots;
DECLARE since TIMESTAMP DEFAULT (
  SELECT IFNULL(TIMESTAMP_SUB(MAX(watermark), INTERVAL ${lookback_minutes} MINUTE), TIMESTAMP '2000-01-01 00:00:00+00')
  FROM `${project}.${dataset}.refresh_manifest`
);
DECLARE oldest TIMESTAMP DEFAULT IF(
  whole,
  TIMESTAMP '2000-01-01 00:00:00+00',
  TIMESTAMP_SUB(run_at, INTERVAL GREATEST(${max_age_days}, ${recent_days}) DAY)
);
-- Two copies of an event_id are one event when their event days are at most copy_days apart (the snippet sends
-- a copy with the same client time; only a made-up time moves it further): the copy received first counts.
-- Beyond that an id sent again counts again, in an incremental run as in a full one.
DECLARE copy_days INT64 DEFAULT 1;
-- The days whose rows changed: those of the rows received since the last run (less the lookback, for rows then
-- in flight), of the other copies of their events (which of two copies counts may change), the last recent_days
-- days, and what the last run left to do.
DECLARE found ARRAY<DATE> DEFAULT (
  SELECT IFNULL(ARRAY_AGG(DISTINCT d), []) FROM (
    SELECT DATE(event_ts) AS d
    FROM `${project}.${dataset}.events`
    WHERE event_ts >= oldest
      AND (whole OR received_at > since OR DATE(event_ts) > DATE_SUB(DATE(run_at), INTERVAL ${recent_days} DAY))
    UNION ALL
    SELECT DATE(copy.event_ts) AS d
    FROM `${project}.${dataset}.events` AS copy
    JOIN (
      SELECT event_id, DATE(event_ts) AS received_day
      FROM `${project}.${dataset}.events`
      WHERE NOT whole AND event_ts >= oldest AND received_at > since
    ) AS arrived USING (event_id)
    WHERE copy.event_ts >= TIMESTAMP_SUB(oldest, INTERVAL copy_days DAY)
      AND ABS(DATE_DIFF(DATE(copy.event_ts), arrived.received_day, DAY)) <= copy_days
    UNION ALL
    SELECT d FROM UNNEST(pending_before) AS d
  )
);
-- Today and yesterday (and the last recent_days days, when asked for) are rebuilt whenever they change. Older
-- days, late ones, are rebuilt at most late_days_per_run a run (${late_days_per_run}): those no run has rebuilt
-- since their rows arrived first (the rows received since `since`; a run after that rebuilt a day once), then
-- the newest; the rest wait in the manifest's pending_days for the next runs. One request with events on 28 past
-- days then costs a few runs a few days each, not 29 days a run for every run in the lookback. A whole run
-- rebuilds every day at once.
DECLARE normal_from DATE DEFAULT DATE_SUB(DATE(run_at), INTERVAL GREATEST(1, ${recent_days} - 1) DAY);
DECLARE late_ranked ARRAY<DATE> DEFAULT (
  SELECT IFNULL(ARRAY_AGG(d ORDER BY rebuilt IS NOT NULL, rebuilt, d DESC), []) FROM (
    SELECT d, (
      SELECT MAX(m.run_at) FROM `${project}.${dataset}.refresh_manifest` AS m
      WHERE m.run_at > since AND d IN UNNEST(m.days)
    ) AS rebuilt
    FROM UNNEST(found) AS d
    WHERE NOT whole AND d < normal_from
  )
);
DECLARE days ARRAY<DATE> DEFAULT ARRAY_CONCAT(
  ARRAY(SELECT d FROM UNNEST(found) AS d WHERE whole OR d >= normal_from),
  ARRAY(SELECT d FROM UNNEST(late_ranked) AS d WITH OFFSET AS n WHERE n < ${late_days_per_run})
);
DECLARE late_queued ARRAY<DATE> DEFAULT ARRAY(
  SELECT d FROM UNNEST(late_ranked) AS d WITH OFFSET AS n WHERE n >= ${late_days_per_run} ORDER BY d
);
DECLARE first_day DATE DEFAULT (SELECT MIN(d) FROM UNNEST(days) AS d);
DECLARE last_day DATE DEFAULT (SELECT MAX(d) FROM UNNEST(days) AS d);
DECLARE rejected_days ARRAY<DATE> DEFAULT (
  SELECT IFNULL(ARRAY_AGG(DISTINCT d), []) FROM (
    SELECT DATE(received_at) AS d
    FROM `${project}.${dataset}.events_rejected`
    WHERE received_at >= oldest
      AND (first_run OR received_at > since OR DATE(received_at) > DATE_SUB(DATE(run_at), INTERVAL ${recent_days} DAY))
    UNION ALL
    SELECT d FROM UNNEST(pending_rejected_before) AS d
  )
);
DECLARE session_days ARRAY<DATE> DEFAULT [];
-- The bots and processes a day that the analyst tables name, per dimension; the rest are counted under '(other)'.
DECLARE ids_per_day INT64 DEFAULT ${ids_per_day};
-- A session ends after a pause longer than the snippet's (read from it), and lasts less than session_max_hours:
-- no visitor chats for a day without a half-hour pause, and every duration figure stays under a day.
DECLARE session_timeout_ms INT64 DEFAULT ${session_timeout_ms};
DECLARE session_max_hours INT64 DEFAULT 24;
DECLARE clean_columns STRING;
-- delivery_health compares two numbers of a client only when their event days are at most gap_days apart: a
-- number changes the gaps of that many days around its own, and a run reads no more than that around its days.
DECLARE gap_days INT64 DEFAULT 1;
-- The most events the snippet holds back for a client (its maxQueue, read from the snippet itself): a jump in a
-- client's numbers wider than that is a reset, not loss, and no drop report counts more.
DECLARE queue_bound INT64 DEFAULT ${max_queue};
-- Time figures count only within [0, MAX_EVENT_AGE_DAYS] (the collector's setting): a client clock is the sender's.
-- (The CAST: the local BigQuery multiplies two small literals as INT32.)
DECLARE max_delay_ms INT64 DEFAULT ${max_event_age_days} * CAST(86400000 AS INT64);
DECLARE health_days ARRAY<DATE> DEFAULT [];
DECLARE health_first DATE;
DECLARE health_last DATE;
DECLARE reconcile BOOL DEFAULT ${reconcile};  -- LoyJoy's own export is configured: loyjoy_reconciliation
DECLARE reconciled_days ARRAY<DATE> DEFAULT [];
DECLARE failures ARRAY<STRING> DEFAULT [];  -- `table: error` for each step that failed

-- events_clean: the days of this run, deduplicated.
BEGIN
${build.events_clean}
ALTER TABLE `${project}.${dataset}.events_clean` ADD COLUMN IF NOT EXISTS is_bot BOOL;  -- built before is_bot
ALTER TABLE `${project}.${dataset}.events_clean` ADD COLUMN IF NOT EXISTS client_seq INT64;  -- and before these
ALTER TABLE `${project}.${dataset}.events_clean` ADD COLUMN IF NOT EXISTS dropped_overflow INT64;
ALTER TABLE `${project}.${dataset}.events_clean` ADD COLUMN IF NOT EXISTS dropped_quota INT64;
ALTER TABLE `${project}.${dataset}.events_clean` ADD COLUMN IF NOT EXISTS dropped_consent INT64;
ALTER TABLE `${project}.${dataset}.events_clean` ADD COLUMN IF NOT EXISTS delivered_later_page BOOL;
${clear.events_clean}
-- By name: a column added later sits at the end of events_clean, and wherever the schema file puts it in `events`
-- (whose columns, in their order, are those of events_clean_this_run).
SET clean_columns = (
  SELECT STRING_AGG(column_name, ', ' ORDER BY ordinal_position)
  FROM `${project}.${dataset}.INFORMATION_SCHEMA.COLUMNS` WHERE table_name = 'events'
);
EXECUTE IMMEDIATE FORMAT(
  'INSERT INTO `${project}.${dataset}.events_clean` (%s) SELECT %s FROM `${project}.${dataset}.events_clean_this_run`',
  clean_columns, clean_columns
);
EXCEPTION WHEN ERROR THEN
${failed.events_clean}
END;

-- daily_ids: the bots and processes of those days, and which the analyst tables name (the rest: '(other)').
${upsert.daily_ids}

-- sessions: every session with an event on those days, whole, wherever it started. A whole run also drops
-- the sessions no event of events_clean has any more (all bots, when bots were counted before).
BEGIN
${build.sessions}
ALTER TABLE `${project}.${dataset}.sessions` ADD COLUMN IF NOT EXISTS sent_session_id STRING;  -- built before it
SET session_days = (
  SELECT IFNULL(ARRAY_AGG(DISTINCT day), []) FROM (
    SELECT day FROM `${project}.${dataset}.sessions_this_run`
    UNION ALL
    SELECT day FROM `${project}.${dataset}.sessions`
    WHERE day BETWEEN DATE_SUB(first_day, INTERVAL 1 DAY) AND DATE_ADD(last_day, INTERVAL 1 DAY)
      AND IFNULL(sent_session_id, session_id) IN (SELECT sent_session_id FROM `${project}.${dataset}.sessions_this_run`)
    UNION ALL
    SELECT d FROM UNNEST(days) AS d  -- their daily_ids, which funnel_daily's groups and names come from
  )
);
${clear.sessions}
${fill.sessions}
EXCEPTION WHEN ERROR THEN
${failed.sessions}
END;

-- daily_counts and opt_ins: the days of this run.
${upsert.daily_counts}

${upsert.opt_ins}

-- funnel_daily: the days whose sessions changed (a whole run: every day in its range).
${upsert.funnel_daily}

-- delivery_health: the days of this run and gap_days around each (a number, or a copy, changes the figures of
-- the numbers near it: a late event that fills a gap takes it off the number above, whose day may be the next).
BEGIN
SET health_days = (  -- (CASTs: the local BigQuery types neither an empty array's dates nor GENERATE_ARRAY's numbers)
  SELECT IFNULL(ARRAY_AGG(DISTINCT DATE_ADD(CAST(d AS DATE), INTERVAL CAST(shift AS INT64) DAY)), [])
  FROM UNNEST(days) AS d, UNNEST(GENERATE_ARRAY(-GREATEST(gap_days, copy_days), GREATEST(gap_days, copy_days))) AS shift
);
SET health_first = (SELECT MIN(d) FROM UNNEST(health_days) AS d);
SET health_last = (SELECT MAX(d) FROM UNNEST(health_days) AS d);
${build.delivery_health}
ALTER TABLE `${project}.${dataset}.delivery_health` ADD COLUMN IF NOT EXISTS resets INT64;  -- built before these
ALTER TABLE `${project}.${dataset}.delivery_health` ADD COLUMN IF NOT EXISTS clients_with_gaps INT64;
ALTER TABLE `${project}.${dataset}.delivery_health` ADD COLUMN IF NOT EXISTS delays_left_out INT64;
${clear.delivery_health}
${fill.delivery_health}
EXCEPTION WHEN ERROR THEN
${failed.delivery_health}
END;

-- rejected_by_reason: the days that received refusals.
${upsert.rejected_by_reason}

-- loyjoy_reconciliation, with LoyJoy's export: the days of this run and the last three (the export's own delay).
IF reconcile THEN
  BEGIN
  SET reconciled_days = (
    SELECT ARRAY_AGG(DISTINCT d) FROM (
      SELECT d FROM UNNEST(days) AS d
      UNION ALL
      SELECT d FROM UNNEST(GENERATE_DATE_ARRAY(DATE_SUB(DATE(run_at), INTERVAL 3 DAY), DATE(run_at))) AS d
    )
  );
  ${steps.loyjoy_reconciliation}
  EXCEPTION WHEN ERROR THEN
  ${failed.loyjoy_reconciliation}
  END;
END IF;

-- The GA4 tables, with GA4's export (ga4_export_dataset; without it nothing here runs or reads GA4). Each run
-- reads from the export only the daily tables that are new since the last run (ga4_manifest) and those of the
-- newest three days (GA4 adds late hits to a daily table for three days), and an intraday table only for a day
-- after the newest daily table (while a day has both, the two would count it twice); a first run, or one after
-- ga4_conversion_events changed, reads from ${ga4_start_date}. Which tables those are is found at run time
-- (ga4_suffixes, from INFORMATION_SCHEMA); the two statements that read the export (ga4_session_days.sql and
-- ga4_reads/conversions.sql) are run by EXECUTE IMMEDIATE with those suffixes written into their text as a
-- literal list, at most ga4_tables_per_read at a time: BigQuery documents that a constant filter on a wildcard's
-- table suffix limits the tables it reads, and says nothing of a script variable there. (Not each table by name,
-- UNION ALL: the wildcard reads a column an older export table lacks as NULL, where naming that table fails.)
-- All the rest reads the collector's own tables: ga4_session_days and ga4_conversions (the export's days, boiled
-- down), then ga4_visits (GA4 sessions), chat_impact and chat_conversions, each for the days that can have
-- changed.
-- One block: the tables build on each other; a failure is recorded as chat_impact's and the next run, whose
-- manifest then still has the last good position, reads the same GA4 days again.
IF ${ga4} THEN
  BEGIN
  DECLARE ga4_conversion_events ARRAY<STRING> DEFAULT ${ga4_conversion_events};
  DECLARE ga4_listed ARRAY<STRING>;
  DECLARE ga4_ran BOOL;  -- (three, not a STRUCT: the local BigQuery cannot read a field of a STRUCT variable)
  DECLARE ga4_daily_through DATE;
  DECLARE ga4_events_before STRING;
  DECLARE ga4_whole BOOL;
  DECLARE ga4_newest DATE;
  DECLARE ga4_suffixes ARRAY<STRING> DEFAULT [];
  -- Export tables per reading statement: a first run from a start date years back is a few statements of a few
  -- kilobytes each (BigQuery's limit: 1 MB of text), each with a bounded number of tables to read.
  DECLARE ga4_tables_per_read INT64 DEFAULT ${ga4_tables_per_read};
  DECLARE ga4_read_from INT64 DEFAULT 0;
  DECLARE ga4_tables STRING;  -- the suffixes of one reading statement, as SQL string literals
  DECLARE ga4_days ARRAY<DATE> DEFAULT [];
  DECLARE ga4_first DATE;
  DECLARE ga4_last DATE;
  DECLARE impact_days ARRAY<DATE> DEFAULT [];
  DECLARE impact_first DATE;
  DECLARE impact_last DATE;
  DECLARE conversion_days ARRAY<DATE> DEFAULT [];
  DECLARE conversion_first DATE;
  DECLARE conversion_last DATE;
  CREATE TABLE IF NOT EXISTS `${project}.${dataset}.ga4_manifest` (
    ran_at TIMESTAMP, daily_through DATE, conversion_events STRING, suffixes ARRAY<STRING>
  ) PARTITION BY DATE(ran_at);
  -- (ga4_session_days' statements add to its scratch table, which is made here, with the columns its SELECT
  -- gives in their order, as is the table if missing: ga4_visits reads it whether or not this run reads GA4.)
  CREATE OR REPLACE TABLE `${project}.${dataset}.ga4_session_days_this_run` (
    export_day DATE, from_intraday BOOL, ga_client_id STRING, ga_session_id INT64, first_ts TIMESTAMP,
    last_ts TIMESTAMP, events INT64, page_views INT64, device_category STRING, source STRING, medium STRING,
    campaign STRING, first_user_source STRING, first_user_medium STRING
  );
  ${create.ga4_session_days}
  CREATE TABLE IF NOT EXISTS `${project}.${dataset}.ga4_conversions` (
    export_day DATE, conversion_ts TIMESTAMP, event_name STRING, transaction_id STRING, revenue FLOAT64,
    ga_client_id STRING, ga_session_id INT64
  ) PARTITION BY export_day CLUSTER BY ga_client_id, event_name;
  SET ga4_listed = (
    SELECT IFNULL(ARRAY_AGG(REGEXP_EXTRACT(table_name, r'^events_(.+)$')), [])
    FROM `${ga4_export}.INFORMATION_SCHEMA.TABLES`
    WHERE REGEXP_CONTAINS(table_name, r'^events_(intraday_)?[0-9]{8}$')
  );
  SET ga4_ran = (SELECT COUNT(*) > 0 FROM `${project}.${dataset}.ga4_manifest`);
  SET ga4_daily_through = (
    SELECT daily_through FROM `${project}.${dataset}.ga4_manifest` ORDER BY ran_at DESC LIMIT 1
  );
  SET ga4_events_before = (
    SELECT conversion_events FROM `${project}.${dataset}.ga4_manifest` ORDER BY ran_at DESC LIMIT 1
  );
  SET ga4_whole = NOT ga4_ran OR ga4_events_before != ARRAY_TO_STRING(ga4_conversion_events, ',');
  SET ga4_newest = (
    SELECT MAX(PARSE_DATE('%Y%m%d', s)) FROM UNNEST(ga4_listed) AS s WHERE NOT STARTS_WITH(s, 'intraday_')
  );
  SET ga4_suffixes = ARRAY(
    SELECT s FROM UNNEST(ga4_listed) AS s
    WHERE PARSE_DATE('%Y%m%d', RIGHT(s, 8)) >= DATE '${ga4_start_date}'
      AND IF(
        STARTS_WITH(s, 'intraday_'),
        PARSE_DATE('%Y%m%d', RIGHT(s, 8)) > IFNULL(ga4_newest, DATE '1970-01-01'),
        ga4_whole
          OR PARSE_DATE('%Y%m%d', s) > IFNULL(ga4_daily_through, DATE '1970-01-01')
          OR PARSE_DATE('%Y%m%d', s) >= DATE_SUB(ga4_newest, INTERVAL 3 DAY)
      )
    ORDER BY s
  );
  SET ga4_days = ARRAY(SELECT DISTINCT PARSE_DATE('%Y%m%d', RIGHT(s, 8)) FROM UNNEST(ga4_suffixes) AS s);
  SET ga4_first = (SELECT MIN(d) FROM UNNEST(ga4_days) AS d);
  SET ga4_last = (SELECT MAX(d) FROM UNNEST(ga4_days) AS d);
  IF ARRAY_LENGTH(ga4_suffixes) > 0 THEN  -- (`events_*` must match some table)
    CREATE OR REPLACE TABLE `${project}.${dataset}.ga4_conversion_hits_this_run` (
      export_day DATE, event_timestamp INT64, event_name STRING, transaction_id STRING, revenue FLOAT64,
      ga_client_id STRING, ga_session_id INT64
    );
    -- (The suffixes are table names INFORMATION_SCHEMA gave and the pattern above let through: digits and
    -- `intraday_`, nothing to escape.)
    WHILE ga4_read_from < ARRAY_LENGTH(ga4_suffixes) DO
      SET ga4_tables = (
        SELECT STRING_AGG(FORMAT("'%s'", s), ', ' ORDER BY i)
        FROM UNNEST(ga4_suffixes) AS s WITH OFFSET AS i
        WHERE i >= ga4_read_from AND i < ga4_read_from + ga4_tables_per_read
      );
      EXECUTE IMMEDIATE REPLACE(
        r'''INSERT INTO `${project}.${dataset}.ga4_session_days_this_run`
${sql.ga4_session_days}''',
        '{{ga4_suffixes}}', ga4_tables
      );
      EXECUTE IMMEDIATE REPLACE(
        r'''INSERT INTO `${project}.${dataset}.ga4_conversion_hits_this_run`
${ga4_reads.conversions}''',
        '{{ga4_suffixes}}', ga4_tables
      );
      SET ga4_read_from = ga4_read_from + ga4_tables_per_read;
    END WHILE;
    ${clear.ga4_session_days}
    ${fill.ga4_session_days}
    ${steps.ga4_conversions}
  END IF;
  ${build.ga4_visits}
  -- chat_impact's days: those of the GA4 sessions rebuilt (before and after), and those a chat of this run can mark
  -- (its day, or the day before for a GA4 session across midnight). (CAST: the local BigQuery cannot type the
  -- elements of an empty array.)
  SET impact_days = (
    SELECT IFNULL(ARRAY_AGG(DISTINCT d), []) FROM (
      SELECT day AS d FROM `${project}.${dataset}.ga4_visits_this_run`
      UNION ALL
      SELECT day FROM `${project}.${dataset}.ga4_visits`
      WHERE day BETWEEN DATE_SUB(ga4_first, INTERVAL 2 DAY) AND DATE_ADD(ga4_last, INTERVAL 2 DAY)
        AND ga4_session_key IN (SELECT ga4_session_key FROM `${project}.${dataset}.ga4_visits_this_run`)
      UNION ALL
      SELECT d FROM UNNEST(days) AS d
      UNION ALL
      SELECT DATE_SUB(CAST(d AS DATE), INTERVAL 1 DAY) FROM UNNEST(days) AS d
    )
  );
  SET impact_first = (SELECT MIN(d) FROM UNNEST(impact_days) AS d);
  SET impact_last = (SELECT MAX(d) FROM UNNEST(impact_days) AS d);
  ${clear.ga4_visits}
  ${fill.ga4_visits}
  ${steps.chat_impact}
  -- chat_conversions' days: the conversions of the export days read (a day either side: UTC against the
  -- property's time zone), and every day from the first of this run to as far as its chats reach (the window).
  SET conversion_days = (
    SELECT IFNULL(ARRAY_AGG(DISTINCT d), []) FROM (
      SELECT d FROM UNNEST(ga4_days) AS d
      UNION ALL
      SELECT DATE_SUB(CAST(d AS DATE), INTERVAL 1 DAY) FROM UNNEST(ga4_days) AS d
      UNION ALL
      SELECT DATE_ADD(CAST(d AS DATE), INTERVAL 1 DAY) FROM UNNEST(ga4_days) AS d
      UNION ALL
      SELECT d FROM UNNEST(GENERATE_DATE_ARRAY(
        first_day, LEAST(DATE_ADD(last_day, INTERVAL ${attribution_window_days} DAY), DATE(run_at))
      )) AS d
    )
  );
  SET conversion_first = (SELECT MIN(d) FROM UNNEST(conversion_days) AS d);
  SET conversion_last = (SELECT MAX(d) FROM UNNEST(conversion_days) AS d);
  ${steps.chat_conversions}
  INSERT INTO `${project}.${dataset}.ga4_manifest` (ran_at, daily_through, conversion_events, suffixes)
  VALUES (
    run_at,
    COALESCE(ga4_newest, ga4_daily_through),
    ARRAY_TO_STRING(ga4_conversion_events, ','),
    ga4_suffixes
  );
  EXCEPTION WHEN ERROR THEN
  ${failed.chat_impact}
  END;
END IF;

-- loyjoy_kpis and experiments: the days of this run, the day before each and the days whose sessions changed;
-- experiments also every later day up to today (each day's figures are over its trailing 30 days).
BEGIN
DECLARE kpi_days ARRAY<DATE> DEFAULT (
  SELECT IFNULL(ARRAY_AGG(DISTINCT d), []) FROM (
    SELECT d FROM UNNEST(days) AS d
    UNION ALL
    SELECT DATE_SUB(CAST(d AS DATE), INTERVAL 1 DAY) FROM UNNEST(days) AS d
    UNION ALL
    SELECT d FROM UNNEST(session_days) AS d
  )
);
DECLARE kpi_first DATE DEFAULT (SELECT MIN(d) FROM UNNEST(kpi_days) AS d);
DECLARE kpi_last DATE DEFAULT (SELECT MAX(d) FROM UNNEST(kpi_days) AS d);
DECLARE experiment_days ARRAY<DATE> DEFAULT IFNULL(
  GENERATE_DATE_ARRAY(kpi_first, GREATEST(kpi_last, DATE(run_at))), []
);
DECLARE experiment_first DATE DEFAULT kpi_first;
DECLARE experiment_last DATE DEFAULT (SELECT MAX(d) FROM UNNEST(experiment_days) AS d);
CREATE TABLE IF NOT EXISTS `${project}.${dataset}.experiments` (
  day DATE, bot_id STRING, process_id STRING, jump STRING, option INT64, outcome STRING, sessions INT64,
  reached INT64, sessions_30d INT64, reached_30d INT64, rate FLOAT64, baseline_option INT64, baseline_rate FLOAT64,
  difference FLOAT64, difference_low FLOAT64, difference_high FLOAT64, z FLOAT64, p_value FLOAT64
) PARTITION BY day CLUSTER BY process_id, jump, outcome;
${upsert.loyjoy_kpis}

${upsert.experiments}
END;

-- The manifest row, failed steps or not: the watermark moves on, and the late days past this run's pass and what
-- failed are pending for the next runs.
INSERT INTO `${project}.${dataset}.refresh_manifest` (
  run_at, watermark, days, session_days, rejected_days, bots_included, failures, pending_days, pending_rejected_days
)
VALUES (
  run_at, run_at, days, session_days, rejected_days, include_bots, failures,
  ARRAY(
    SELECT DISTINCT d FROM UNNEST(ARRAY_CONCAT(
      late_queued,
      IF(EXISTS(SELECT 1 FROM UNNEST(failures) AS f WHERE NOT STARTS_WITH(f, 'rejected_by_reason:')), days, [])
    )) AS d
    ORDER BY d
  ),
  IF(EXISTS(SELECT 1 FROM UNNEST(failures) AS f WHERE STARTS_WITH(f, 'rejected_by_reason:')), rejected_days, [])
);
-- Only the names of the failed tables: an error message may quote a row's text (the manifest has them whole).
IF ARRAY_LENGTH(failures) > 0 THEN
  SELECT ERROR(FORMAT(
    'LoyJoy analyst refresh: %d step(s) failed (%s); the other tables are up to date, the failed days are retried by the next run; the errors are in refresh_manifest.failures',
    ARRAY_LENGTH(failures),
    (SELECT STRING_AGG(SPLIT(f, ':')[OFFSET(0)], ', ') FROM UNNEST(failures) AS f)
  ));
END IF;

SELECT run_at, ARRAY_LENGTH(days) AS days, ARRAY_LENGTH(session_days) AS session_days,
  ARRAY_LENGTH(rejected_days) AS rejected_days, first_day, last_day, include_bots,
  ARRAY_LENGTH(health_days) AS health_days, ARRAY_LENGTH(late_queued) AS late_days_queued;
