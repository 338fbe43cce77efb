SELECT DISTINCT operation_id
FROM (
  SELECT operation_id
  FROM `my-project.source_dataset.ussd_operations`
  WHERE source_timestamp > @window_from AND source_timestamp <= @window_to AND operation_id IS NOT NULL
  UNION ALL
  SELECT u.operation_id
  FROM `my-project.source_dataset.ussd_operations` AS u
  JOIN `my-project.source_dataset.transactiongu` AS t ON u.transaction_ref = t.transaction_id
  WHERE t.updated_at > @window_from AND t.updated_at <= @window_to
    AND u.operation_id IS NOT NULL AND u.source_timestamp IS NOT NULL AND u.source_timestamp <= @window_to
) AS changed
ORDER BY operation_id
