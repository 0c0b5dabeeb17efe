locals {
  labels = merge({ app = "loyjoy-collector" }, var.labels)

  # One source of truth for the tables and views: the files the collector's code and tests read.
  schema_dir = "${path.module}/../functions/loyjoy_collector/schema"
  views_dir  = "${path.module}/../functions/loyjoy_collector/views"
  tables     = jsondecode(file("${local.schema_dir}/tables.json"))
  views = {
    for name, spec in jsondecode(file("${local.schema_dir}/views.json")) : name => spec
    if try(spec.requires, null) != "ga4_dataset" || var.ga4_export_dataset != null
  }
  view_values = {
    project          = var.project_id
    dataset          = var.dataset_id
    ga4_dataset      = coalesce(var.ga4_export_dataset, "none")
    ga4_start_suffix = replace(var.ga4_start_date, "-", "")
  }

  services = [
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "bigquerydatatransfer.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ]
}

resource "google_project_service" "services" {
  # Compute Engine only for the load balancer: enabling it in a new project also creates a default network.
  for_each = toset(concat(
    local.services,
    var.custom_domain == null ? [] : ["compute.googleapis.com"],
    var.alerts_enabled ? ["monitoring.googleapis.com"] : [],
  ))

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# ------------------------------------------------------------------------------------ service accounts

# Runs the function: may write rows into this dataset and read the hash key, nothing else.
resource "google_service_account" "runtime" {
  project      = var.project_id
  account_id   = "${substr(var.function_name, 0, 22)}-run"
  display_name = "LoyJoy collector (runtime)"

  depends_on = [google_project_service.services]
}

# Builds the function: Google changed the default build account in 2024, which breaks builds in new
# projects; a dedicated one with just what a build needs avoids that.
resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${substr(var.function_name, 0, 20)}-build"
  display_name = "LoyJoy collector (build)"

  depends_on = [google_project_service.services]
}

resource "google_project_iam_member" "build" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/artifactregistry.writer",
  ])

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.build.email}"
}

resource "google_storage_bucket_iam_member" "build_reads_source" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.build.email}"
}

# ------------------------------------------------------------------------------------ the hash key

# Generated at apply time and written write-only: it is never in the plan, the state or the code.
ephemeral "random_password" "pii_hash_key" {
  length  = 48
  special = false
}

resource "google_secret_manager_secret" "pii_hash_key" {
  project   = var.project_id
  secret_id = "${var.function_name}-pii-hash-key"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.services]
}

resource "google_secret_manager_secret_version" "pii_hash_key" {
  secret                 = google_secret_manager_secret.pii_hash_key.id
  secret_data_wo         = ephemeral.random_password.pii_hash_key.result
  secret_data_wo_version = var.pii_hash_key_version
}

resource "google_secret_manager_secret_iam_member" "runtime_reads_key" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.pii_hash_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.runtime.email}"
}
