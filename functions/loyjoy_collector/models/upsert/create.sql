CREATE TABLE IF NOT EXISTS `${project}.${dataset}.${table}` PARTITION BY ${partition_by} CLUSTER BY ${cluster_by}
AS SELECT * FROM `${project}.${dataset}.${table}_this_run` WHERE FALSE;
