-- What the collector refused, per day and reason, for the days of this run that received refusals: a spike
-- here is a broken sender or an attack. `loyjoy-collector check`'s deliberate refusal is left out.
-- example_detail is the detail of the day's first refusal of the row (by time received, then id), as the gate
-- stored it (scrubbed, format characters out, a leading formula character marked as text): one sender can set
-- it only by being first that day, not by sending the text that sorts last (MAX did) at any time.
-- partition by: day
-- cluster by: reason, protocol
-- replaces: day IN UNNEST(rejected_days)
WITH refused AS (
  SELECT
    *,
    FIRST_VALUE(reason_detail) OVER (
      PARTITION BY DATE(received_at), reason, protocol, http_status
      ORDER BY received_at, rejected_id
      ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
    ) AS first_detail
  FROM `${project}.${dataset}.events_rejected`
  WHERE DATE(received_at) IN UNNEST(rejected_days)
    AND NOT STARTS_WITH(IFNULL(raw_payload, ''), '{"event": "collector_check"')
)

SELECT
  DATE(received_at) AS day,
  reason,
  protocol,
  http_status,
  SUM(IFNULL(refusals, 1)) AS rejections,
  MIN(received_at) AS first_seen,
  MAX(received_at) AS last_seen,
  ANY_VALUE(first_detail) AS example_detail
FROM refused
GROUP BY day, reason, protocol, http_status
