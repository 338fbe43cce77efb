SELECT DISTINCT operation_id
FROM (
  SELECT u.operation_id
  FROM `my-project.source_dataset.ussd_operations` AS u
  WHERE u.source_timestamp > @window_from AND u.source_timestamp <= @window_to
    AND u.operation_id IS NOT NULL AND NOT REGEXP_CONTAINS(u.operation_id, @blank_pattern)
    AND LENGTH(u.operation_id) <= @max_id_length
    AND u.source_timestamp >= @valid_from
    AND u.created_at > @read_after AND u.created_at <= @valid_to AND u.created_at >= @valid_from
  UNION ALL
  SELECT u.operation_id
  FROM `my-project.source_dataset.ussd_operations` AS u
  JOIN (
    SELECT DISTINCT transaction_id
    FROM `my-project.source_dataset.transactiongu`
    WHERE updated_at > @window_from AND updated_at <= @window_to
  ) AS t ON u.transaction_ref = t.transaction_id
  WHERE u.source_timestamp > @read_after AND u.source_timestamp <= @window_to
    AND u.operation_id IS NOT NULL AND NOT REGEXP_CONTAINS(u.operation_id, @blank_pattern)
    AND LENGTH(u.operation_id) <= @max_id_length
    AND u.source_timestamp >= @valid_from
    AND u.created_at > @read_after AND u.created_at <= @valid_to AND u.created_at >= @valid_from
) AS changed
