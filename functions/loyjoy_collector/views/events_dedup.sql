-- Every event once, kept for Looker Studio sources made before the analyst tables: events_clean is the
-- deduplicated table (refreshed incrementally, partitioned by day), so this view prunes like it.
SELECT *
FROM `${project}.${dataset}.events_clean`
