SELECT DISTINCT operation_id
FROM (
  SELECT operation_id
  FROM `my-project.source_dataset.ussd_operations`
  WHERE source_timestamp > @window_from AND source_timestamp <= @window_to
    AND created_at > @read_after AND created_at <= @window_to
    AND operation_id IS NOT NULL
  UNION ALL
  SELECT u.operation_id
  FROM `my-project.source_dataset.ussd_operations` AS u
  JOIN (
    SELECT DISTINCT transaction_id
    FROM `my-project.source_dataset.transactiongu`
    WHERE updated_at > @window_from AND updated_at <= @window_to
  ) AS t ON u.transaction_ref = t.transaction_id
  WHERE u.source_timestamp > @read_after AND u.source_timestamp <= @window_to
    AND u.created_at > @read_after AND u.created_at <= @window_to
    AND u.operation_id IS NOT NULL
) AS changed
