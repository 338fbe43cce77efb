# The quarantine: source rows that cannot be consolidated (a blank operation_id, a missing
# timestamp, a timestamp out of range, a transaction without updated_at, ...), one row each with
# its identity, its reason, the run that first saw it and when. publishOps MERGEs into it at every
# run (each row once: keyed by table, reason and the row's fingerprint); `consolidate rejects`
# reads it. The schema is the repository's schema file, the one the code loads.

resource "google_bigquery_table" "quarantine" {
  dataset_id  = google_bigquery_dataset.consolidated.dataset_id
  # QUARANTINE_TABLE's default: the functions' environment leaves it unset.
  table_id    = "quarantine"
  description = "Source rows that cannot be consolidated, each once with its reason (the consolidation chain's quarantine)."
  schema      = file("${local.schema_dir}/quarantine.json")

  # Read by when rows were first seen (a run's new rows, the last days') ...
  time_partitioning {
    type  = "DAY"
    field = "first_seen_at"
  }

  # ... and filtered by reason and by batch (`consolidate rejects --reason --batch`).
  clustering = ["reason", "batch_id"]

  deletion_protection = var.protect_data
}

# publishOps records each run's rejected rows: a MERGE into the quarantine table only.
resource "google_bigquery_table_iam_member" "publish_ops_writes_quarantine" {
  project    = var.project_id
  dataset_id = google_bigquery_table.quarantine.dataset_id
  table_id   = google_bigquery_table.quarantine.table_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.publish_ops.email}"
}

# publishOps warns of keys the reference tables repeat (the pipeline then takes one row per key).
resource "google_bigquery_table_iam_member" "publish_ops_reads_services" {
  project    = var.project_id
  dataset_id = var.source_dataset
  table_id   = var.services_table
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.publish_ops.email}"

  depends_on = [google_bigquery_table.source]
}

# Reads agents too, for the same warning about repeated agent_code keys.
resource "google_bigquery_table_iam_member" "publish_ops_reads_agents" {
  project    = var.project_id
  dataset_id = var.source_dataset
  table_id   = var.agents_table
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.publish_ops.email}"

  depends_on = [google_bigquery_table.source]
}
