SELECT
  COALESCE(SUM(CASE WHEN source_timestamp IS NOT NULL THEN 1 ELSE 0 END), 0) AS missing_operation_id,
  COALESCE(SUM(CASE WHEN source_timestamp IS NULL THEN 1 ELSE 0 END), 0) AS missing_source_timestamp
FROM `my-project.source_dataset.ussd_operations`
WHERE (operation_id IS NULL AND source_timestamp > @window_from AND source_timestamp <= @window_to)
   OR (source_timestamp IS NULL AND created_at > @window_from AND created_at <= @window_to)
