-- Delivery per day, host, browser, engine, device type and protocol, for the days of this run whose numbers
-- changed (health_days): what arrived, and what provably did not. The snippet numbers each client's events
-- 1, 2, ...; a number never received below a number that was is an event lost on the way (seq_gaps, counted
-- on the row of the number just above the gap). Losses after a client's last received number leave no trace,
-- so seq_gaps is a lower bound. A gap counts only down to a number whose event day is at most gap_days from
-- the day of the number above it: numbers further apart, and those below a client's first number, count
-- nothing, because the client may have been seen before (a returning visitor). So a number changes figures of
-- at most gap_days days around its own, and a run that rebuilds those (health_days) builds exactly what a full
-- run builds. Every row read comes from events_clean (every event once, bots left out as there), so a copy
-- the snippet sent again counts once; copies themselves are counted from `events` (resent, duplicates).
-- No sender moves a figure by more than the snippet could: the snippet holds back at most queue_bound events
-- (its maxQueue), so a jump in the numbers wider than that is a reset (another device, cleared storage, or a
-- made-up number), counted once in `resets` and not as loss, and a drop report counts at most queue_bound.
-- Each number then adds at most queue_bound to a sum: no SUM here can pass INT64 (real BigQuery fails on that).
-- partition by: event_date
-- cluster by: page_hostname, engine, browser, protocol
-- replaces: event_date IN UNNEST(health_days)
WITH rows_rebuilt AS (
  SELECT
    event_id,
    event_ts,
    client_id,
    client_seq,
    page_hostname,
    browser,
    device_type,
    protocol,
    dropped_overflow,
    dropped_quota,
    dropped_consent,
    delivered_later_page,
    -- The engine, from ua-parser's browser family (a family, then a space or the end: "Chrome Mobile WebView").
    CASE
      WHEN os IN ('iOS', 'iPadOS') THEN 'WebKit'  -- Apple lets every browser on iOS use WebKit only
      WHEN REGEXP_CONTAINS(IFNULL(browser, ''), r'^(Firefox|Iceweasel|SeaMonkey|Waterfox|Pale Moon|IceCat|LibreWolf)( |$)')
        THEN 'Gecko'
      WHEN REGEXP_CONTAINS(IFNULL(browser, ''), r'^(Safari|Mobile Safari|WebKit|Epiphany|GNOME Web|Midori)( |$)') THEN 'WebKit'
      WHEN browser = 'Edge' AND SAFE_CAST(REGEXP_EXTRACT(browser_version, r'^(\d+)') AS INT64) < 79 THEN 'other'  -- EdgeHTML
      WHEN REGEXP_CONTAINS(
        IFNULL(browser, ''),
        r'^(Chrome|Chromium|Edge|Opera|Samsung Internet|Yandex Browser|Brave|Vivaldi|UC Browser|Silk|Whale|HeadlessChrome|Facebook|Instagram|Google|DuckDuckGo|MiuiBrowser|Huawei Browser|Ecosia|AVG|Avast Secure Browser)( |$)'
      ) THEN 'Blink'
      ELSE 'other'
    END AS engine,
    -- The client's clock is the sender's: a delay counts only between 0 and max_delay_ms (no event arrives
    -- older, MAX_EVENT_AGE_DAYS); one outside is left out of the percentiles and counted in delays_left_out.
    IF(
      TIMESTAMP_DIFF(received_at, client_ts, MILLISECOND) BETWEEN 0 AND max_delay_ms,
      TIMESTAMP_DIFF(received_at, client_ts, MILLISECOND),
      NULL
    ) AS delay_ms,
    client_ts IS NOT NULL AND NOT TIMESTAMP_DIFF(received_at, client_ts, MILLISECOND) BETWEEN 0 AND max_delay_ms
      AS delay_left_out
  FROM `${project}.${dataset}.events_clean`
  WHERE DATE(event_ts) IN UNNEST(health_days)
),

-- One entry per number and event day of those rows' clients, from gap_days before the first day rebuilt to
-- gap_days after the last: a second event with the same number on the same day (two tabs numbering alike) is
-- no lost event, and the entry's row is the first of its events.
numbers AS (
  SELECT client_id, client_seq, DATE(event_ts) AS event_date, MIN(event_id) AS event_id
  FROM `${project}.${dataset}.events_clean`
  WHERE DATE(event_ts) BETWEEN DATE_SUB(health_first, INTERVAL gap_days DAY) AND DATE_ADD(health_last, INTERVAL gap_days DAY)
    AND client_seq IS NOT NULL
    AND client_id IN (SELECT client_id FROM rows_rebuilt WHERE client_seq IS NOT NULL)
  GROUP BY client_id, client_seq, event_date
),

-- The number below each number of the days rebuilt: the highest of the client's numbers below it whose day is at
-- most gap_days from its own. Each number is offered to every day that near (event_id NULL), and each number of
-- the days rebuilt takes the highest offer below it on its day: a window per client and day, no join of pairs.
offers AS (
  SELECT
    client_id,
    DATE_ADD(event_date, INTERVAL CAST(shift AS INT64) DAY) AS event_date,  -- (CAST: as in refresh.sql)
    client_seq,
    CAST(NULL AS STRING) AS event_id
  FROM numbers, UNNEST(GENERATE_ARRAY(-gap_days, gap_days)) AS shift
  UNION ALL
  SELECT client_id, event_date, client_seq, event_id FROM numbers WHERE event_date IN UNNEST(health_days)
),

-- The numbers missing just below each number (NULL: none below it near enough). A difference past INT64
-- (numbers stored before the collector bounded them) is a reset like any jump past the bound.
missing AS (
  SELECT
    event_id,
    event_date,
    IF(
      previous_seq IS NOT NULL,
      IFNULL(SAFE_SUBTRACT(SAFE_SUBTRACT(client_seq, previous_seq), 1), queue_bound + 1),
      NULL
    ) AS missing
  FROM (
    SELECT
      *,
      MAX(IF(event_id IS NULL, client_seq, NULL)) OVER (
        PARTITION BY client_id, event_date ORDER BY client_seq, event_id IS NULL
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
      ) AS previous_seq
    FROM offers
  )
  WHERE event_id IS NOT NULL
),

gaps AS (
  SELECT
    event_id,
    event_date,
    IF(missing <= queue_bound, missing, 0) AS seq_gaps,
    IF(missing > queue_bound, 1, 0) AS resets
  FROM missing
),

-- What the snippet sent more than once, from the raw rows (bots and check events left out as in events_clean):
-- of each row counted, the copies of its event_id at most copy_days from its day (as events_clean dedupes),
-- itself included: rows flagged resent (sent again without a confirming answer), and rows beyond the first.
copies AS (
  SELECT
    r.event_id,
    DATE(r.event_ts) AS event_date,
    COUNTIF('resent' IN UNNEST(e.quality_flags)) AS resent,
    COUNT(*) - 1 AS duplicates
  FROM `${project}.${dataset}.events` AS e
  JOIN (SELECT event_id, event_ts FROM rows_rebuilt) AS r
    ON e.event_id = r.event_id AND ABS(DATE_DIFF(DATE(e.event_ts), DATE(r.event_ts), DAY)) <= copy_days
  WHERE DATE(e.event_ts) BETWEEN DATE_SUB(health_first, INTERVAL copy_days DAY) AND DATE_ADD(health_last, INTERVAL copy_days DAY)
    AND e.event_name != 'collector_check'
    AND (include_bots OR NOT COALESCE(e.is_bot, e.device_type = 'bot', FALSE))
  GROUP BY r.event_id, event_date
),

measured AS (
  SELECT
    DATE(r.event_ts) AS event_date,
    r.page_hostname,
    r.browser,
    r.engine,
    r.device_type,
    r.protocol,
    r.client_seq,
    r.client_id,
    IFNULL(g.seq_gaps, 0) AS seq_gaps,
    IFNULL(g.resets, 0) AS resets,
    LEAST(r.dropped_overflow, queue_bound) AS dropped_overflow,
    LEAST(r.dropped_quota, queue_bound) AS dropped_quota,
    LEAST(r.dropped_consent, queue_bound) AS dropped_consent,
    IFNULL(c.resent, 0) AS resent,
    IFNULL(c.duplicates, 0) AS duplicates,
    r.delivered_later_page,
    r.delay_ms,
    r.delay_left_out
  FROM rows_rebuilt AS r
  -- By id and day: an id sent again with a time further than copy_days away is an event of its own.
  LEFT JOIN gaps AS g ON g.event_id = r.event_id AND g.event_date = DATE(r.event_ts)
  LEFT JOIN copies AS c ON c.event_id = r.event_id AND c.event_date = DATE(r.event_ts)
),

with_quantiles AS (
  SELECT
    *,
    -- A client with gaps counts once a day, on the row of its first gap: the day's rows sum to distinct clients.
    IFNULL(seq_gaps > 0 AND ROW_NUMBER() OVER (
      PARTITION BY event_date, client_id, seq_gaps > 0 ORDER BY client_seq
    ) = 1, FALSE) AS first_gap,
    PERCENTILE_CONT(delay_ms, 0.5) OVER keys AS delay_p50,
    PERCENTILE_CONT(delay_ms, 0.95) OVER keys AS delay_p95
  FROM measured
  WINDOW keys AS (PARTITION BY event_date, page_hostname, browser, engine, device_type, protocol)
)

SELECT
  event_date,
  page_hostname,
  browser,
  engine,
  device_type,
  protocol,
  COUNT(*) AS events_received,
  COUNT(client_seq) AS events_numbered,
  COUNT(DISTINCT client_id) AS clients,
  SUM(seq_gaps) AS seq_gaps,
  IFNULL(SUM(dropped_overflow), 0) AS dropped_overflow,
  IFNULL(SUM(dropped_quota), 0) AS dropped_quota,
  IFNULL(SUM(dropped_consent), 0) AS dropped_consent,
  SUM(resent) AS resent,
  SUM(duplicates) AS duplicates,
  CAST(ROUND(MAX(delay_p50)) AS INT64) AS delay_p50_ms,
  CAST(ROUND(MAX(delay_p95)) AS INT64) AS delay_p95_ms,
  SAFE_DIVIDE(COUNTIF(delivered_later_page), COUNT(*)) AS later_page_share,
  -- Columns added later stay at the end (refresh.sql adds them to a table built before them).
  SUM(resets) AS resets,
  COUNTIF(first_gap) AS clients_with_gaps,
  COUNTIF(delay_left_out) AS delays_left_out
FROM with_quantiles
GROUP BY event_date, page_hostname, browser, engine, device_type, protocol
