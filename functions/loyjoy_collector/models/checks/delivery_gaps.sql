-- The delivery gap alert, as a BigQuery scheduled query of its own (infra/monitoring.tf): Cloud Monitoring cannot
-- read BigQuery, so this query fails, with ERROR(), when yesterday's gap rate in delivery_health passed
-- ${threshold}, and a log-based alert policy fires on that failure. Gap rate: gaps / (gaps + numbered events
-- received); only numbered events (the snippet's) can reveal a gap. The day needs gaps of at least ${min_clients}
-- distinct clients: one sender, whatever its numbers, is one client (delivery_health counts each client with
-- gaps once a day, and a jump past the snippet's queue as a reset, not loss). The error quotes numbers, the day
-- and the worst engine (a name the collector chose), never a host or browser name, which the sender wrote.
DECLARE checked_day DATE DEFAULT DATE_SUB(CURRENT_DATE(), INTERVAL 1 DAY);
DECLARE gaps INT64 DEFAULT (
  SELECT IFNULL(SUM(seq_gaps), 0) FROM `${project}.${dataset}.delivery_health` WHERE event_date = checked_day
);
DECLARE numbered INT64 DEFAULT (
  SELECT IFNULL(SUM(events_numbered), 0) FROM `${project}.${dataset}.delivery_health` WHERE event_date = checked_day
);
DECLARE clients INT64 DEFAULT (
  SELECT IFNULL(SUM(clients_with_gaps), 0) FROM `${project}.${dataset}.delivery_health` WHERE event_date = checked_day
);
DECLARE worst STRING DEFAULT (
  SELECT FORMAT('%s %.2f%%', engine, 100 * SAFE_DIVIDE(SUM(seq_gaps), SUM(seq_gaps) + SUM(events_numbered)))
  FROM `${project}.${dataset}.delivery_health`
  WHERE event_date = checked_day AND events_numbered > 0
  GROUP BY engine
  ORDER BY SAFE_DIVIDE(SUM(seq_gaps), SUM(seq_gaps) + SUM(events_numbered)) DESC, SUM(seq_gaps) DESC, engine
  LIMIT 1
);
IF clients >= ${min_clients} AND SAFE_DIVIDE(gaps, gaps + numbered) > ${threshold} THEN
  SELECT ERROR(FORMAT(
    'LoyJoy delivery gap rate %.2f%% on %s is above %.2f%%: %s events lost on the way by %s clients, %s numbered events received; worst engine: %s',
    100 * SAFE_DIVIDE(gaps, gaps + numbered), CAST(checked_day AS STRING), 100 * ${threshold},
    CAST(gaps AS STRING), CAST(clients AS STRING), CAST(numbered AS STRING), worst
  ));
END IF;
SELECT checked_day AS day, gaps, numbered, clients, SAFE_DIVIDE(gaps, gaps + numbered) AS gap_rate;
