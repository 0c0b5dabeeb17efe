-- Delivery per day, host, browser, engine, device type and protocol, for the days of this run whose numbers
-- changed (health_days): what arrived, and what provably did not. The snippet numbers each client's events
-- 1, 2, ...; a number never received below a number that was is an event lost on the way (seq_gaps, counted
-- on the row of the number just above the gap). Losses after a client's last received number leave no trace,
-- so seq_gaps is a lower bound. A gap counts only when the number below it was received at most late_days
-- days earlier (event days): numbers further apart, and those below a client's first number, count nothing,
-- because the client may have been seen before (a returning visitor) and only late_days days around the run's
-- days are read. Every row read comes from events_clean (every event once, bots left out as there), so a copy
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

-- Every number of those rows' clients, from late_days days before the first day rebuilt to a day after the
-- last (a number's neighbour may carry an event time a little out of order). One row per number: a second
-- event with the same number (two tabs numbering alike) is no lost event.
numbers AS (
  SELECT client_id, client_seq, MIN(DATE(event_ts)) AS event_date, MIN(event_id) AS event_id
  FROM `${project}.${dataset}.events_clean`
  WHERE DATE(event_ts) BETWEEN DATE_SUB(health_first, INTERVAL late_days DAY) AND DATE_ADD(health_last, INTERVAL 1 DAY)
    AND client_seq IS NOT NULL
    AND client_id IN (SELECT client_id FROM rows_rebuilt WHERE client_seq IS NOT NULL)
  GROUP BY client_id, client_seq
),

-- The numbers missing just below each number (NULL: no number below it within late_days days). A difference
-- past INT64 (numbers stored before the collector bounded them) is a reset like any jump past the bound.
missing AS (
  SELECT
    event_id,
    IF(
      previous_seq IS NOT NULL AND DATE_DIFF(event_date, previous_date, DAY) <= late_days,
      IFNULL(SAFE_SUBTRACT(SAFE_SUBTRACT(client_seq, previous_seq), 1), queue_bound + 1),
      NULL
    ) AS missing
  FROM (
    SELECT
      *,
      LAG(client_seq) OVER (PARTITION BY client_id ORDER BY client_seq) AS previous_seq,
      LAG(event_date) OVER (PARTITION BY client_id ORDER BY client_seq) AS previous_date
    FROM numbers
  )
),

gaps AS (
  SELECT
    event_id,
    IF(missing <= queue_bound, missing, 0) AS seq_gaps,
    IF(missing > queue_bound, 1, 0) AS resets
  FROM missing
),

-- What the snippet sent more than once, from the raw rows (bots and check events left out as in events_clean):
-- rows flagged resent (sent again without a confirming answer), and rows beyond the first of an event_id.
copies AS (
  SELECT
    event_id,
    COUNTIF('resent' IN UNNEST(quality_flags)) AS resent,
    COUNT(*) - 1 AS duplicates
  FROM `${project}.${dataset}.events`
  WHERE DATE(event_ts) IN UNNEST(health_days)
    AND event_name != 'collector_check'
    AND (include_bots OR NOT COALESCE(is_bot, device_type = 'bot', FALSE))
  GROUP BY event_id
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
  LEFT JOIN gaps AS g ON g.event_id = r.event_id
  LEFT JOIN copies AS c ON c.event_id = r.event_id
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
