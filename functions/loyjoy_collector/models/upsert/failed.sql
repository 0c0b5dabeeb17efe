SET failures = ARRAY_CONCAT(failures, [FORMAT('%s: %s', '${table}', ${error_message})]);
