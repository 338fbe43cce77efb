SELECT DISTINCT operation_id
FROM (
  SELECT u.operation_id
  FROM `my-project.source_dataset.ussd_operations` AS u
  WHERE u.source_timestamp > @window_from AND u.operation_id IS NOT NULL AND NOT REGEXP_CONTAINS(u.operation_id, @blank_pattern)
    AND LENGTH(u.operation_id) <= @max_id_length
    AND u.source_timestamp >= @valid_from AND u.source_timestamp <= @window_to
    AND u.created_at >= @valid_from AND u.created_at <= @valid_to
  UNION ALL
  SELECT u.operation_id
  FROM `my-project.source_dataset.ussd_operations` AS u
  JOIN `my-project.source_dataset.transactiongu` AS t ON u.transaction_ref = t.transaction_id
  WHERE t.updated_at > @window_from AND t.updated_at <= @window_to
    AND u.operation_id IS NOT NULL AND NOT REGEXP_CONTAINS(u.operation_id, @blank_pattern)
    AND LENGTH(u.operation_id) <= @max_id_length
    AND u.source_timestamp >= @valid_from AND u.source_timestamp <= @window_to
    AND u.created_at >= @valid_from AND u.created_at <= @valid_to
) AS changed
ORDER BY operation_id
