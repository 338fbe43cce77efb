CREATE OR REPLACE TABLE `my-project.consolidation_staging.params_20260115t102000z_1a2b3c` AS
SELECT @batch_id AS batch_id, @window_to AS window_to,
  @valid_from AS valid_from, @valid_to AS valid_to, @blank_pattern AS blank_pattern
