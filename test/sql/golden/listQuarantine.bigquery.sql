SELECT source_table, reason, operation_id, transaction_ref, transaction_id, created_at, source_timestamp, updated_at, row_fingerprint, batch_id, first_seen_at
FROM `my-project.consolidated_dataset.quarantine`
WHERE (@reason IS NULL OR reason = @reason) AND (@batch_id IS NULL OR batch_id = @batch_id)
ORDER BY first_seen_at DESC, source_table, reason, row_fingerprint
LIMIT @row_limit
