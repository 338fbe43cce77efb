SELECT DISTINCT CAST(TIMESTAMP_MICROS(created_at_us) AS DATE) AS first_day, CAST(TIMESTAMP_MICROS(created_at_last_us) AS DATE) AS last_day
FROM `my-project.consolidation_staging.enriched_20260115t102000z_1a2b3c`
WHERE operation_id IS NOT NULL
ORDER BY first_day, last_day
