CREATE OR REPLACE TABLE `${project}.${dataset}.${table}_this_run` AS
${sql};
${create}
