-- What the collector refused, per day and reason, for the days of this run that received refusals: a spike
-- here is a broken sender or an attack. `loyjoy-collector check`'s deliberate refusal is left out.
-- partition by: day
-- cluster by: reason, protocol
-- replaces: day IN UNNEST(rejected_days)
SELECT
  DATE(received_at) AS day,
  reason,
  protocol,
  http_status,
  SUM(IFNULL(refusals, 1)) AS rejections,
  MIN(received_at) AS first_seen,
  MAX(received_at) AS last_seen,
  MAX(reason_detail) AS example_detail
FROM `${project}.${dataset}.events_rejected`
WHERE DATE(received_at) IN UNNEST(rejected_days)
  AND NOT STARTS_WITH(IFNULL(raw_payload, ''), '{"event": "collector_check"')
GROUP BY day, reason, protocol, http_status
