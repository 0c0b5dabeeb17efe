resource "google_bigquery_dataset" "loyjoy" {
  #checkov:skip=CKV_GCP_81:Customer-managed keys are optional (var.kms_key_name); Google-managed encryption is the default.
  project                    = var.project_id
  dataset_id                 = var.dataset_id
  location                   = var.dataset_location
  description                = "LoyJoy chat events, refused input, analyst tables and views (loyjoy-collector)."
  delete_contents_on_destroy = false
  labels                     = local.labels

  dynamic "default_encryption_configuration" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      kms_key_name = default_encryption_configuration.value
    }
  }

  depends_on = [google_project_service.services]
}

# The runtime writes rows here and nowhere else (dataset-level, not project-wide).
resource "google_bigquery_dataset_iam_member" "runtime_writes_rows" {
  project    = var.project_id
  dataset_id = google_bigquery_dataset.loyjoy.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.runtime.email}"
}

resource "google_bigquery_table" "tables" {
  #checkov:skip=CKV_GCP_80:Customer-managed keys are optional (var.kms_key_name); Google-managed encryption is the default.
  for_each = local.tables

  project     = var.project_id
  dataset_id  = google_bigquery_dataset.loyjoy.dataset_id
  table_id    = each.key
  description = each.value.description
  # The shared schema file without maxLength: the collector truncates to it, and BigQuery would refuse adding
  # one to an existing column (schema.py, TableSpec.bigquery_fields).
  schema = jsonencode([
    for field in jsondecode(file("${local.schema_dir}/${each.value.schema_file}")) :
    { for key, value in field : key => value if key != "maxLength" }
  ])
  clustering          = length(each.value.clustering) > 0 ? each.value.clustering : null
  deletion_protection = var.deletion_protection
  labels              = local.labels

  dynamic "encryption_configuration" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      kms_key_name = encryption_configuration.value
    }
  }

  time_partitioning {
    type  = each.value.time_partitioning.type
    field = each.value.time_partitioning.field
    expiration_ms = (
      each.key == "events_rejected"
      ? (var.rejected_retention_days == null ? null : var.rejected_retention_days * 86400000)
      : (var.events_retention_days == null ? null : var.events_retention_days * 86400000)
    )
  }
}

# Views read only tables and views of a lower tier (schema/views.json), so each tier waits for the last.
resource "google_bigquery_table" "views_tier1" {
  #checkov:skip=CKV_GCP_121:Views hold no data, only SQL from this repository; Terraform must be able to replace them.
  #checkov:skip=CKV_GCP_80:Views store no data to encrypt.
  for_each = { for name, spec in local.views : name => spec if spec.tier == 1 }

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.loyjoy.dataset_id
  table_id            = each.key
  description         = each.value.description
  deletion_protection = false
  labels              = local.labels

  view {
    query          = templatefile("${local.views_dir}/${each.key}.sql", local.view_values)
    use_legacy_sql = false
  }

  depends_on = [google_bigquery_table.tables, google_bigquery_job.analyst_tables]
}

resource "google_bigquery_table" "views_tier2" {
  #checkov:skip=CKV_GCP_121:Views hold no data, only SQL from this repository; Terraform must be able to replace them.
  #checkov:skip=CKV_GCP_80:Views store no data to encrypt.
  for_each = { for name, spec in local.views : name => spec if spec.tier == 2 }

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.loyjoy.dataset_id
  table_id            = each.key
  description         = each.value.description
  deletion_protection = false
  labels              = local.labels

  view {
    query          = templatefile("${local.views_dir}/${each.key}.sql", local.view_values)
    use_legacy_sql = false
  }

  depends_on = [google_bigquery_table.views_tier1]
}
