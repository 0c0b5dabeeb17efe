-- Every event once: insertAll's insertId dedup is best-effort and senders retry, so keep the first copy
-- of each event_id. Every other view reads this one.
SELECT *
FROM `${project}.${dataset}.events`
WHERE TRUE
QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY received_at) = 1
