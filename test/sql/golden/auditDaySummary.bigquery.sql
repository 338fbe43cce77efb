WITH expected AS (
  SELECT CAST(operation_id AS STRING) AS operation_id, CAST(msisdn AS STRING) AS msisdn, CAST(service_code AS STRING) AS service_code, CAST(operation_type AS STRING) AS operation_type, CAST(amount AS NUMERIC) AS amount, CAST(currency AS STRING) AS currency, CAST(ussd_status AS STRING) AS ussd_status, CAST(created_at AS TIMESTAMP) AS created_at, CAST(source_timestamp AS TIMESTAMP) AS source_timestamp, CAST(transaction_id AS STRING) AS transaction_id, CAST(transaction_status AS STRING) AS transaction_status, CAST(transaction_amount AS NUMERIC) AS transaction_amount, CAST(fees AS NUMERIC) AS fees, CAST(commission AS NUMERIC) AS commission, CAST(service_name AS STRING) AS service_name, CAST(service_category AS STRING) AS service_category, CAST(agent_name AS STRING) AS agent_name, CAST(agent_region AS STRING) AS agent_region, CAST(reconciliation_status AS STRING) AS reconciliation_status, CAST(version_ts AS TIMESTAMP) AS version_ts, FARM_FINGERPRINT(TO_JSON_STRING(STRUCT(CAST(operation_id AS STRING), CAST(msisdn AS STRING), CAST(service_code AS STRING), CAST(operation_type AS STRING), CAST(amount AS NUMERIC), CAST(currency AS STRING), CAST(ussd_status AS STRING), CAST(created_at AS TIMESTAMP), CAST(source_timestamp AS TIMESTAMP), CAST(transaction_id AS STRING), CAST(transaction_status AS STRING), CAST(transaction_amount AS NUMERIC), CAST(fees AS NUMERIC), CAST(commission AS NUMERIC), CAST(service_name AS STRING), CAST(service_category AS STRING), CAST(agent_name AS STRING), CAST(agent_region AS STRING), CAST(reconciliation_status AS STRING), CAST(version_ts AS TIMESTAMP)))) AS row_hash
  FROM (
    SELECT operation_id, msisdn, service_code, operation_type, amount, currency, ussd_status, TIMESTAMP_MICROS(created_at_us) AS created_at, TIMESTAMP_MICROS(source_timestamp_us) AS source_timestamp, transaction_id, transaction_status, transaction_amount, fees, commission, service_name, service_category, agent_name, agent_region, reconciliation_status, TIMESTAMP_MICROS(version_ts_us) AS version_ts
    FROM (
WITH `step_0` AS (
WITH changed AS (
  SELECT DISTINCT operation_id FROM (SELECT DISTINCT operation_id FROM `my-project.source_dataset.ussd_operations` WHERE created_at >= @day_from AND created_at < @day_to AND source_timestamp > @read_after AND source_timestamp <= @as_of AND operation_id IS NOT NULL)
),
operations AS (
  SELECT
    u.operation_id, u.msisdn, u.service_code, u.operation_type, u.amount, u.currency,
    u.status, u.transaction_ref, u.agent_code, u.created_at, u.source_timestamp
  FROM (SELECT * FROM `my-project.source_dataset.ussd_operations` WHERE created_at >= @day_from AND created_at < @day_to AND source_timestamp > @read_after AND source_timestamp <= @as_of) AS u
  JOIN changed AS c ON u.operation_id = c.operation_id
  WHERE u.source_timestamp > @read_after AND u.source_timestamp <= @as_of
    AND u.created_at > @read_after AND u.created_at <= @as_of
  QUALIFY ROW_NUMBER() OVER (PARTITION BY u.operation_id ORDER BY u.source_timestamp DESC) = 1
),
transactions AS (
  SELECT t.transaction_id, t.service_id, t.status, t.amount, t.fees, t.commission, t.updated_at
  FROM `my-project.source_dataset.transactiongu` AS t
  WHERE t.updated_at > @read_after AND t.updated_at <= @as_of
    AND t.transaction_id IN (SELECT transaction_ref FROM operations WHERE transaction_ref IS NOT NULL)
  QUALIFY ROW_NUMBER() OVER (PARTITION BY t.transaction_id ORDER BY t.updated_at DESC) = 1
)
SELECT
  o.operation_id, o.msisdn, o.service_code, o.operation_type, o.amount, o.currency,
  o.status AS ussd_status,
  UNIX_MICROS(o.created_at) AS created_at_us, UNIX_MICROS(o.source_timestamp) AS source_timestamp_us,
  t.transaction_id, t.status AS transaction_status, t.amount AS transaction_amount,
  t.fees, t.commission, UNIX_MICROS(t.updated_at) AS transaction_updated_at_us,
  s.service_name, s.category AS service_category,
  a.agent_name, a.region AS agent_region
FROM operations AS o
LEFT JOIN transactions AS t ON o.transaction_ref = t.transaction_id
LEFT JOIN `my-project.reference_dataset.services` AS s ON t.service_id = s.service_id
LEFT JOIN `my-project.reference_dataset.agents` AS a ON o.agent_code = a.agent_code
),
`step_1` AS (
SELECT
  * EXCEPT (`transaction_updated_at_us`),
  (CASE
  WHEN transaction_id IS NULL THEN 'MISSING_TRANSACTION'
  WHEN ussd_status = 'INITIATED' OR transaction_status = 'PENDING' THEN 'PENDING'
  WHEN amount IS NULL OR transaction_amount IS NULL OR amount <> transaction_amount THEN 'AMOUNT_MISMATCH'
  WHEN (ussd_status = 'SUCCESS' AND transaction_status = 'SUCCESSFUL')
    OR (ussd_status IN ('FAILED', 'TIMEOUT') AND transaction_status IN ('FAILED', 'REVERSED')) THEN 'MATCHED'
  ELSE 'STATUS_MISMATCH'
END) AS `reconciliation_status`,
  (CASE
  WHEN transaction_updated_at_us IS NOT NULL AND transaction_updated_at_us > source_timestamp_us THEN transaction_updated_at_us
  ELSE source_timestamp_us
END) AS `version_ts_us`
FROM `step_0`
)
SELECT * FROM `step_1`
    ) AS pipeline
  ) AS scratch
  WHERE created_at >= @day_from AND created_at < @day_to
),
actual AS (
  SELECT CAST(operation_id AS STRING) AS operation_id, CAST(msisdn AS STRING) AS msisdn, CAST(service_code AS STRING) AS service_code, CAST(operation_type AS STRING) AS operation_type, CAST(amount AS NUMERIC) AS amount, CAST(currency AS STRING) AS currency, CAST(ussd_status AS STRING) AS ussd_status, CAST(created_at AS TIMESTAMP) AS created_at, CAST(source_timestamp AS TIMESTAMP) AS source_timestamp, CAST(transaction_id AS STRING) AS transaction_id, CAST(transaction_status AS STRING) AS transaction_status, CAST(transaction_amount AS NUMERIC) AS transaction_amount, CAST(fees AS NUMERIC) AS fees, CAST(commission AS NUMERIC) AS commission, CAST(service_name AS STRING) AS service_name, CAST(service_category AS STRING) AS service_category, CAST(agent_name AS STRING) AS agent_name, CAST(agent_region AS STRING) AS agent_region, CAST(reconciliation_status AS STRING) AS reconciliation_status, CAST(version_ts AS TIMESTAMP) AS version_ts, FARM_FINGERPRINT(TO_JSON_STRING(STRUCT(CAST(operation_id AS STRING), CAST(msisdn AS STRING), CAST(service_code AS STRING), CAST(operation_type AS STRING), CAST(amount AS NUMERIC), CAST(currency AS STRING), CAST(ussd_status AS STRING), CAST(created_at AS TIMESTAMP), CAST(source_timestamp AS TIMESTAMP), CAST(transaction_id AS STRING), CAST(transaction_status AS STRING), CAST(transaction_amount AS NUMERIC), CAST(fees AS NUMERIC), CAST(commission AS NUMERIC), CAST(service_name AS STRING), CAST(service_category AS STRING), CAST(agent_name AS STRING), CAST(agent_region AS STRING), CAST(reconciliation_status AS STRING), CAST(version_ts AS TIMESTAMP)))) AS row_hash
  FROM `my-project.consolidated_dataset.consolidated_table`
  WHERE created_at >= @day_from AND created_at < @day_to
),
expected_days AS (
  SELECT CAST(created_at AS DATE) AS day, COUNT(*) AS row_count, CAST(BIT_XOR(row_hash) AS STRING) AS fingerprint
  FROM expected
  GROUP BY CAST(created_at AS DATE)
),
actual_days AS (
  SELECT CAST(created_at AS DATE) AS day, COUNT(*) AS row_count, CAST(BIT_XOR(row_hash) AS STRING) AS fingerprint
  FROM actual
  GROUP BY CAST(created_at AS DATE)
)
SELECT CAST(COALESCE(e.day, a.day) AS STRING) AS day,
  COALESCE(e.row_count, 0) AS expected_rows, COALESCE(a.row_count, 0) AS actual_rows,
  e.fingerprint AS expected_fingerprint, a.fingerprint AS actual_fingerprint
FROM expected_days AS e
FULL OUTER JOIN actual_days AS a ON e.day = a.day
ORDER BY day
