SELECT reason, COUNT(*) AS row_count
FROM `my-project.consolidated_dataset.quarantine`
WHERE (@reason IS NULL OR reason = @reason) AND (@batch_id IS NULL OR batch_id = @batch_id)
GROUP BY reason
ORDER BY reason
