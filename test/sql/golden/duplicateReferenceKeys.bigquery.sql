SELECT reference, reference_key, row_count
FROM (
  SELECT 'services' AS reference, service_id AS reference_key, COUNT(*) AS row_count
  FROM `my-project.reference_dataset.services`
  WHERE service_id IS NOT NULL
  GROUP BY service_id
  HAVING COUNT(*) > 1
  UNION ALL
  SELECT 'agents' AS reference, agent_code AS reference_key, COUNT(*) AS row_count
  FROM `my-project.reference_dataset.agents`
  WHERE agent_code IS NOT NULL
  GROUP BY agent_code
  HAVING COUNT(*) > 1
) AS duplicated
ORDER BY reference, reference_key
LIMIT 100
