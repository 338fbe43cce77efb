SELECT reconciliation_status, COUNT(*) AS row_count
FROM `my-project.consolidated_dataset.consolidated_table`
GROUP BY reconciliation_status
ORDER BY reconciliation_status
