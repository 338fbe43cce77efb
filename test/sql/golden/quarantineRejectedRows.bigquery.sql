MERGE INTO `my-project.consolidated_dataset.quarantine` AS Q
USING (
WITH ussd_rows AS (
  SELECT u.* FROM `my-project.source_dataset.ussd_operations` AS u WHERE u.source_timestamp > @window_from AND u.source_timestamp <= @window_to
  UNION ALL
  SELECT u.* FROM `my-project.source_dataset.ussd_operations` AS u WHERE u.source_timestamp IS NULL
  UNION ALL
  SELECT u.* FROM `my-project.source_dataset.ussd_operations` AS u WHERE u.source_timestamp >= @timestamp_min AND u.source_timestamp < @valid_from
  UNION ALL
  SELECT u.* FROM `my-project.source_dataset.ussd_operations` AS u WHERE u.source_timestamp > @valid_to AND u.source_timestamp <= @timestamp_max
),
transaction_rows AS (
  SELECT t.* FROM `my-project.source_dataset.transactiongu` AS t WHERE t.updated_at > @window_from AND t.updated_at <= @window_to
  UNION ALL
  SELECT t.* FROM `my-project.source_dataset.transactiongu` AS t WHERE t.updated_at IS NULL
  UNION ALL
  SELECT t.* FROM `my-project.source_dataset.transactiongu` AS t WHERE t.updated_at >= @timestamp_min AND t.updated_at < @valid_from
  UNION ALL
  SELECT t.* FROM `my-project.source_dataset.transactiongu` AS t WHERE t.updated_at > @valid_to AND t.updated_at <= @timestamp_max
),
ussd AS (
  SELECT
    CASE
      WHEN u.operation_id IS NULL OR REGEXP_CONTAINS(u.operation_id, @blank_pattern) THEN 'MISSING_OPERATION_ID'
      WHEN LENGTH(u.operation_id) > @max_id_length THEN 'OPERATION_ID_TOO_LONG'
      WHEN u.source_timestamp IS NULL THEN 'MISSING_SOURCE_TIMESTAMP'
      WHEN u.created_at IS NULL THEN 'MISSING_CREATED_AT'
      WHEN NOT (u.source_timestamp >= @valid_from AND u.source_timestamp <= @valid_to) OR NOT (u.created_at >= @valid_from AND u.created_at <= @valid_to) THEN 'TIMESTAMP_OUT_OF_RANGE'
    END AS reason,
    CASE
      WHEN u.source_timestamp >= @valid_from AND u.source_timestamp <= @valid_to THEN u.source_timestamp
      WHEN u.created_at >= @valid_from AND u.created_at <= @valid_to THEN u.created_at
    END AS placed_at,
    u.operation_id, u.transaction_ref, u.created_at, u.source_timestamp,
    TO_HEX(MD5(TO_JSON_STRING(u))) AS row_fingerprint
  FROM ussd_rows AS u
),
transactions AS (
  SELECT
    CASE
      WHEN t.transaction_id IS NULL OR REGEXP_CONTAINS(t.transaction_id, @blank_pattern) THEN 'MISSING_TRANSACTION_ID'
      WHEN t.updated_at IS NULL THEN 'TRANSACTION_WITHOUT_UPDATED_AT'
      WHEN NOT (t.updated_at >= @valid_from AND t.updated_at <= @valid_to) THEN 'TIMESTAMP_OUT_OF_RANGE'
    END AS reason,
    CASE WHEN t.updated_at >= @valid_from AND t.updated_at <= @valid_to THEN t.updated_at END AS placed_at,
    t.transaction_id, t.updated_at,
    TO_HEX(MD5(TO_JSON_STRING(t))) AS row_fingerprint
  FROM transaction_rows AS t
)
SELECT DISTINCT 'ussd_operations' AS source_table, reason, operation_id, transaction_ref, CAST(NULL AS STRING) AS transaction_id,
  created_at, source_timestamp, CAST(NULL AS TIMESTAMP) AS updated_at, row_fingerprint
FROM ussd
WHERE reason IS NOT NULL AND (placed_at IS NULL OR (placed_at > @window_from AND placed_at <= @window_to))
UNION ALL
SELECT DISTINCT 'transactiongu' AS source_table, reason, CAST(NULL AS STRING) AS operation_id, CAST(NULL AS STRING) AS transaction_ref, transaction_id,
  CAST(NULL AS TIMESTAMP) AS created_at, CAST(NULL AS TIMESTAMP) AS source_timestamp, updated_at, row_fingerprint
FROM transactions
WHERE reason IS NOT NULL AND (placed_at IS NULL OR (placed_at > @window_from AND placed_at <= @window_to))
) AS S
ON Q.source_table = S.source_table AND Q.reason = S.reason AND Q.row_fingerprint = S.row_fingerprint
WHEN NOT MATCHED THEN INSERT (source_table, reason, operation_id, transaction_ref, transaction_id, created_at, source_timestamp, updated_at, row_fingerprint, batch_id, first_seen_at)
VALUES (S.source_table, S.reason, S.operation_id, S.transaction_ref, S.transaction_id, S.created_at, S.source_timestamp, S.updated_at, S.row_fingerprint, @batch_id, @seen_at)
