# BigQuery: the consolidated table, the staging dataset, and (for a test project only) the
# source tables. The schemas are the repository's schema files, the ones the code loads.

resource "google_bigquery_dataset" "consolidated" {
  dataset_id                 = var.consolidated_dataset
  location                   = var.bigquery_location
  description                = "One current, reconciled row per USSD operation (the consolidation chain)."
  delete_contents_on_destroy = !var.protect_data

  depends_on = [google_project_service.enabled]
}

resource "google_bigquery_table" "consolidated" {
  dataset_id  = google_bigquery_dataset.consolidated.dataset_id
  table_id    = var.consolidated_table
  description = "One row per operation_id, upserted by mergeOnComplete after each batch."
  schema      = file("${local.schema_dir}/consolidated_table.json")

  # The operation's creation date never changes, so a row never moves between partitions; the
  # MERGE restricts the target to the creation days its batch touches.
  time_partitioning {
    type  = "DAY"
    field = "created_at"
  }

  # The MERGE matches on operation_id.
  clustering = ["operation_id"]

  deletion_protection = var.protect_data
}

resource "google_bigquery_dataset" "staging" {
  dataset_id  = var.staging_dataset
  location    = var.bigquery_location
  description = "Per-batch IDs, parameters and enriched tables of the consolidation chain; dropped after each MERGE, and they expire on their own."

  default_table_expiration_ms = var.staging_table_expiration_hours * 3600 * 1000
  delete_contents_on_destroy  = true

  depends_on = [google_project_service.enabled]
}

# A fresh test project has no source tables: create_source_tables creates them empty, from the
# schema files. Where the tables exist, nothing here creates, changes or destroys them.
resource "google_bigquery_dataset" "source" {
  count = var.create_source_tables ? 1 : 0

  dataset_id                 = var.source_dataset
  location                   = var.bigquery_location
  description                = "Source tables of the consolidation chain (created empty for a test project)."
  delete_contents_on_destroy = true

  depends_on = [google_project_service.enabled]
}

resource "google_bigquery_table" "source" {
  for_each = var.create_source_tables ? local.source_tables : {}

  dataset_id          = google_bigquery_dataset.source[0].dataset_id
  table_id            = each.value.table
  schema              = file("${local.schema_dir}/${each.value.schema}.json")
  deletion_protection = false

  dynamic "time_partitioning" {
    for_each = each.value.partition_field == null ? [] : [each.value.partition_field]
    content {
      type  = "DAY"
      field = time_partitioning.value
    }
  }

  clustering = length(each.value.clustering) > 0 ? each.value.clustering : null
}
