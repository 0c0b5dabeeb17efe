-- The bots and processes of each day of this run, and which of them the analyst tables name: a sender chooses
-- its bot_id and process_id, and one request with a hundred new ids would add a hundred groups to daily_counts,
-- funnel_daily and opt_ins. Per day and dimension, ids are ranked by distinct clients that day, then by the
-- first received, then by the id; the first ids_per_day (IDS_PER_DAY, 500) are kept, and the events of the rest
-- are counted under '(other)'. A real bot or process has more clients than a made-up one, and it cannot lose its
-- place to ids that come later. `name` is a process's most frequent name that day (ties: the smallest), the name
-- the analyst tables give it. Each day depends only on its own events: incremental runs build what a full run
-- builds.
-- partition by: day
-- cluster by: dimension, id
-- replaces: day IN UNNEST(days)
WITH ids AS (
  SELECT DATE(event_ts) AS day, 'bot_id' AS dimension, bot_id AS id, client_id, received_at
  FROM `${project}.${dataset}.events_clean`
  WHERE DATE(event_ts) IN UNNEST(days) AND bot_id IS NOT NULL
  UNION ALL
  SELECT DATE(event_ts) AS day, 'process_id' AS dimension, process_id AS id, client_id, received_at
  FROM `${project}.${dataset}.events_clean`
  WHERE DATE(event_ts) IN UNNEST(days) AND process_id IS NOT NULL
),

counted AS (
  SELECT day, dimension, id, COUNT(DISTINCT client_id) AS clients, COUNT(*) AS events, MIN(received_at) AS first_received
  FROM ids
  GROUP BY day, dimension, id
),

-- Counted per name rather than gathered into arrays: a process with a million events a day stays that many rows.
names AS (
  SELECT day, id, name
  FROM (
    SELECT DATE(event_ts) AS day, process_id AS id, process_name AS name, COUNT(*) AS n
    FROM `${project}.${dataset}.events_clean`
    WHERE DATE(event_ts) IN UNNEST(days) AND process_id IS NOT NULL AND process_name IS NOT NULL
    GROUP BY day, id, name
  )
  WHERE TRUE
  QUALIFY ROW_NUMBER() OVER (PARTITION BY day, id ORDER BY n DESC, name) = 1
),

ranked AS (
  SELECT
    *,
    ROW_NUMBER() OVER (PARTITION BY day, dimension ORDER BY clients DESC, first_received, id) AS id_rank
  FROM counted
)

SELECT
  r.day,
  r.dimension,
  r.id,
  IF(r.dimension = 'process_id', n.name, NULL) AS name,
  r.clients,
  r.events,
  r.first_received,
  r.id_rank,
  r.id_rank <= ids_per_day AS kept
FROM ranked AS r
LEFT JOIN names AS n ON r.dimension = 'process_id' AND n.day = r.day AND n.id = r.id
