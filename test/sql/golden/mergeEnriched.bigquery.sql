MERGE INTO `my-project.consolidated_dataset.consolidated_table` AS T
USING (
  SELECT operation_id, msisdn, service_code, operation_type, amount, currency, ussd_status, TIMESTAMP_MICROS(created_at_us) AS created_at, TIMESTAMP_MICROS(source_timestamp_us) AS source_timestamp, transaction_id, transaction_status, transaction_amount, fees, commission, service_name, service_category, agent_name, agent_region, reconciliation_status, TIMESTAMP_MICROS(version_ts_us) AS version_ts
  FROM `my-project.consolidation_staging.enriched_20260115t102000z_1a2b3c`
  WHERE operation_id IS NOT NULL
  QUALIFY ROW_NUMBER() OVER (PARTITION BY operation_id ORDER BY version_ts_us DESC) = 1
) AS S
ON T.operation_id = S.operation_id
  AND T.created_at >= @created_from AND T.created_at < @created_to
WHEN MATCHED AND (
  S.version_ts > T.version_ts
  OR (@force AND S.version_ts = T.version_ts)
  OR (S.version_ts = T.version_ts AND @batch_id > T.batch_id AND (
    T.msisdn IS DISTINCT FROM S.msisdn
    OR T.service_code IS DISTINCT FROM S.service_code
    OR T.operation_type IS DISTINCT FROM S.operation_type
    OR T.amount IS DISTINCT FROM S.amount
    OR T.currency IS DISTINCT FROM S.currency
    OR T.ussd_status IS DISTINCT FROM S.ussd_status
    OR T.created_at IS DISTINCT FROM S.created_at
    OR T.source_timestamp IS DISTINCT FROM S.source_timestamp
    OR T.transaction_id IS DISTINCT FROM S.transaction_id
    OR T.transaction_status IS DISTINCT FROM S.transaction_status
    OR T.transaction_amount IS DISTINCT FROM S.transaction_amount
    OR T.fees IS DISTINCT FROM S.fees
    OR T.commission IS DISTINCT FROM S.commission
    OR T.service_name IS DISTINCT FROM S.service_name
    OR T.service_category IS DISTINCT FROM S.service_category
    OR T.agent_name IS DISTINCT FROM S.agent_name
    OR T.agent_region IS DISTINCT FROM S.agent_region
    OR T.reconciliation_status IS DISTINCT FROM S.reconciliation_status
    OR T.version_ts IS DISTINCT FROM S.version_ts))
) THEN UPDATE SET
  msisdn = S.msisdn,
  service_code = S.service_code,
  operation_type = S.operation_type,
  amount = S.amount,
  currency = S.currency,
  ussd_status = S.ussd_status,
  created_at = S.created_at,
  source_timestamp = S.source_timestamp,
  transaction_id = S.transaction_id,
  transaction_status = S.transaction_status,
  transaction_amount = S.transaction_amount,
  fees = S.fees,
  commission = S.commission,
  service_name = S.service_name,
  service_category = S.service_category,
  agent_name = S.agent_name,
  agent_region = S.agent_region,
  reconciliation_status = S.reconciliation_status,
  version_ts = S.version_ts,
  batch_id = @batch_id,
  consolidated_at = @consolidated_at
WHEN NOT MATCHED THEN INSERT (operation_id, msisdn, service_code, operation_type, amount, currency, ussd_status, created_at, source_timestamp, transaction_id, transaction_status, transaction_amount, fees, commission, service_name, service_category, agent_name, agent_region, reconciliation_status, version_ts, batch_id, consolidated_at)
VALUES (S.operation_id, S.msisdn, S.service_code, S.operation_type, S.amount, S.currency, S.ussd_status, S.created_at, S.source_timestamp, S.transaction_id, S.transaction_status, S.transaction_amount, S.fees, S.commission, S.service_name, S.service_category, S.agent_name, S.agent_region, S.reconciliation_status, S.version_ts, @batch_id, @consolidated_at)
