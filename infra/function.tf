# The function's source: functions/ zipped; the object is named after the zip's hash, so a code change is
# a new object and a redeploy (a fixed name would leave the old code running).
data "archive_file" "source" {
  type        = "zip"
  source_dir  = "${path.module}/../functions"
  output_path = "${path.module}/.build/function-source.zip"
  excludes    = ["**/__pycache__/**", "**/*.pyc"]
}

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Holds only the function's source archives, which are public code; access logs would add cost, not insight.
  project                     = var.project_id
  name                        = "${var.project_id}-${var.function_name}-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true
  labels                      = local.labels

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.services]
}

resource "google_storage_bucket_object" "source" {
  name   = "function-source-${data.archive_file.source.output_sha256}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.source.output_path
}

resource "google_cloudfunctions2_function" "collector" {
  #checkov:skip=CKV_GCP_124:Browsers on the internet send the events; set var.ingress to ALLOW_INTERNAL_AND_GCLB behind a load balancer.
  project     = var.project_id
  name        = var.function_name
  location    = var.region
  description = "LoyJoy chat events into BigQuery"
  labels      = local.labels

  build_config {
    runtime         = "python312"
    entry_point     = "collect"
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    min_instance_count               = var.min_instances
    max_instance_count               = var.max_instances
    max_instance_request_concurrency = var.concurrency
    available_cpu                    = var.cpu
    available_memory                 = var.memory
    timeout_seconds                  = var.timeout_seconds
    ingress_settings                 = local.ingress
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.runtime.email

    environment_variables = {
      BQ_PROJECT         = var.project_id
      BQ_DATASET         = google_bigquery_dataset.loyjoy.dataset_id
      ALLOWED_ORIGINS    = join(",", var.allowed_origins)
      IP_MODE            = var.ip_mode
      PII_ALLOWED_KEYS   = join(",", var.pii_allowed_keys)
      URL_ALLOWED_PARAMS = join(",", var.url_allowed_params)
      DATA_PATHS         = join(",", var.data_paths)
      PATH_PREFIXES      = join(",", var.path_prefixes)
      NON_LOYJOY_HITS    = var.non_loyjoy_hits
      MAX_EVENT_AGE_DAYS = tostring(var.max_event_age_days)
      # The flood limits; the client's address is the last X-Forwarded-For entry, or the one before the load
      # balancer's own with custom_domain.
      RATE_LIMIT_ADDRESS_PER_SECOND      = tostring(var.flood_limits.address_per_second)
      RATE_LIMIT_ADDRESS_BURST           = tostring(var.flood_limits.address_burst)
      RATE_LIMIT_CLIENT_PER_SECOND       = tostring(var.flood_limits.client_per_second)
      RATE_LIMIT_CLIENT_BURST            = tostring(var.flood_limits.client_burst)
      RATE_LIMIT_SGTM_ADDRESS_PER_SECOND = tostring(var.flood_limits.sgtm_address_per_second)
      RATE_LIMIT_SGTM_ADDRESS_BURST      = tostring(var.flood_limits.sgtm_address_burst)
      REFUSAL_BUDGET_PER_MINUTE          = tostring(var.flood_limits.refusals_a_minute)
      CLIENT_ADDRESS_HOP                 = var.custom_domain == null ? "1" : "2"
      HEADER_TIMEOUT_SECONDS             = tostring(var.slow_sender_timeouts.headers)
      BODY_TIMEOUT_SECONDS               = tostring(var.slow_sender_timeouts.body)
      # Requests that may store are worked on in THREADS threads: as many as Cloud Run sends an instance.
      THREADS = tostring(var.concurrency)
    }

    secret_environment_variables {
      key        = "PII_HASH_KEY"
      project_id = var.project_id
      secret     = google_secret_manager_secret.pii_hash_key.secret_id
      version    = "latest"
    }
  }

  depends_on = [
    google_project_iam_member.build,
    google_storage_bucket_iam_member.build_reads_source,
    google_secret_manager_secret_version.pii_hash_key,
    google_secret_manager_secret_iam_member.runtime_reads_key,
    google_bigquery_dataset_iam_member.runtime_writes_rows,
  ]
}

# Browsers call the collector without credentials, so allUsers may invoke it. For a 2nd-gen function
# this is Cloud Run's invoker role on its service (the same role on the function resource fails).
resource "google_cloud_run_service_iam_member" "public" {
  count = var.allow_unauthenticated ? 1 : 0

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.collector.name
  role     = "roles/run.invoker"
  member   = "allUsers" #checkov:skip=CKV_GCP_102:A browser-facing collector must be publicly invokable; input is validated and CORS-restricted.
}
