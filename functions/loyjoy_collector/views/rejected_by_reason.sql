-- What the collector refused, per day and reason: a spike here is a broken sender or an attack.
SELECT
  DATE(received_at) AS day,
  reason,
  protocol,
  http_status,
  COUNT(*) AS rejections,
  MIN(received_at) AS first_seen,
  MAX(received_at) AS last_seen,
  MAX(reason_detail) AS example_detail
FROM `${project}.${dataset}.events_rejected`
WHERE NOT STARTS_WITH(IFNULL(raw_payload, ''), '{"event": "collector_check"')  -- `loyjoy-collector check`
GROUP BY day, reason, protocol, http_status
