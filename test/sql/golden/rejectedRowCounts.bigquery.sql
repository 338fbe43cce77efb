SELECT
  (SELECT COUNT(*)
   FROM `my-project.source_dataset.ussd_operations`
   WHERE source_timestamp > @window_from AND source_timestamp <= @window_to
     AND created_at > @read_after AND created_at <= @window_to
     AND operation_id IS NULL) AS missing_operation_id,
  (SELECT COUNT(*)
   FROM `my-project.source_dataset.ussd_operations`
   WHERE source_timestamp IS NULL
     AND created_at > @window_from AND created_at <= @window_to
     AND created_at > @read_after AND created_at <= @window_to) AS missing_source_timestamp
