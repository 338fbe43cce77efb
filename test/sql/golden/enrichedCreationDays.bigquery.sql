SELECT DISTINCT CAST(created_at AS DATE) AS first_day, CAST(created_at_last AS DATE) AS last_day
FROM `my-project.consolidation_staging.enriched_20260115t102000z_1a2b3c`
WHERE operation_id IS NOT NULL
ORDER BY first_day, last_day
