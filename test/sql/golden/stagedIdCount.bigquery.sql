SELECT COUNT(*) AS staged_ids, COUNT(DISTINCT operation_id) AS distinct_ids
FROM `my-project.consolidation_staging.ids_20260115t102000z_1a2b3c`
