INSERT INTO `${project}.${dataset}.${table}` SELECT * FROM `${project}.${dataset}.${table}_this_run`;
