SELECT
  (SELECT COUNT(*)
   FROM `my-project.source_dataset.ussd_operations`
   WHERE source_timestamp > @window_from AND source_timestamp <= @window_to
     AND created_at <= @read_after
     AND operation_id IS NOT NULL) AS old_operation_rows,
  (SELECT COUNT(DISTINCT t.transaction_id)
   FROM `my-project.source_dataset.transactiongu` AS t
   WHERE t.updated_at > @window_from AND t.updated_at <= @window_to
     AND NOT EXISTS (
       SELECT 1
       FROM `my-project.source_dataset.ussd_operations` AS u
       WHERE u.transaction_ref = t.transaction_id
         AND u.source_timestamp > @read_after AND u.source_timestamp <= @window_to
         AND u.created_at > @read_after AND u.created_at <= @window_to
     )) AS unmatched_transactions
