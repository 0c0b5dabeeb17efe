DELETE FROM `${project}.${dataset}.${table}` WHERE ${replaces};
