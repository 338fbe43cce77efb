SELECT CAST(TIMESTAMP_MICROS(created_at_us) AS DATE) AS day, reconciliation_status, COUNT(DISTINCT operation_id) AS operations
FROM `my-project.consolidation_staging.enriched_20260115t102000z_1a2b3c`
WHERE operation_id IS NOT NULL
GROUP BY day, reconciliation_status
ORDER BY day, reconciliation_status
