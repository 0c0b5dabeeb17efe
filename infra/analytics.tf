# The analyst tables (events_clean, daily_ids, sessions, daily_counts, opt_ins, funnel_daily, rejected_by_reason,
# delivery_health, loyjoy_kpis, experiments; loyjoy_reconciliation with var.loyjoy_export_dataset; ga4_visits,
# chat_impact and chat_conversions, with ga4_session_days and ga4_conversions under them, with
# var.ga4_export_dataset):
# day-partitioned and clustered, so a Looker Studio chart reads the days it shows, not the whole history. One
# script builds them incrementally (functions/loyjoy_collector/models/refresh.sql, with one .sql file per
# table whose header gives its partitioning, clustering and the rows a run replaces, and the upsert written
# once in models/upsert/): the same script `loyjoy-collector refresh` runs. Terraform runs it once at apply (which creates the
# tables the views need) and schedules it (var.refresh_schedule) as a BigQuery scheduled query. Bots
# (events.is_bot) are left out of them unless var.analytics_include_bots.
locals {
  models_dir  = "${path.module}/../functions/loyjoy_collector/models"
  model_names = [for file in fileset(local.models_dir, "*.sql") : trimsuffix(file, ".sql") if file != "refresh.sql"]
  # LoyJoy's own export (var.loyjoy_export_dataset), as project.dataset; without it, this dataset stands in for
  # it in the script, whose reconciliation step then never runs.
  loyjoy_export = var.loyjoy_export_dataset == "" ? "" : (
    strcontains(var.loyjoy_export_dataset, ".") ? var.loyjoy_export_dataset : "${var.project_id}.${var.loyjoy_export_dataset}"
  )
  # GA4's export (var.ga4_export_dataset): the GA4 tables and experiments' GA4 outcome; without it the script
  # never runs the GA4 steps and experiments reads no rows in place of ga4_conversions (as ops/refresh.py).
  ga4 = var.ga4_export_dataset != null
  ga4_conversions = local.ga4 ? "`${var.project_id}.${var.dataset_id}.ga4_conversions`" : join("", [
    "(SELECT CAST(NULL AS DATE) AS export_day, CAST(NULL AS STRING) AS ga_client_id, ",
    "CAST(NULL AS INT64) AS ga_session_id, CAST(NULL AS TIMESTAMP) AS conversion_ts FROM UNNEST([1]) WHERE FALSE)",
  ])
  model_values = {
    project                 = var.project_id
    dataset                 = var.dataset_id
    error_message           = "@@error.message"
    loyjoy_export           = local.loyjoy_export == "" ? "${var.project_id}.${var.dataset_id}" : local.loyjoy_export
    ga4                     = local.ga4
    ga4_export              = "${var.project_id}.${coalesce(var.ga4_export_dataset, var.dataset_id)}"
    ga4_conversions         = local.ga4_conversions
    attribution_window_days = var.attribution_window_days
  }
  ga4_conversion_events = format("[%s]", join(", ", [for name in var.ga4_conversion_events : "'${name}'"]))
  model_sql = {
    for name in local.model_names : name => trimsuffix(trimspace(templatefile("${local.models_dir}/${name}.sql", local.model_values)), ";")
  }
  # What reads GA4's export besides ga4_session_days.sql (models/ga4_reads/): refresh.sql runs it with the run's
  # export tables written into its text, as ops/refresh.py does.
  ga4_reads = {
    for file in fileset("${local.models_dir}/ga4_reads", "*.sql") : trimsuffix(file, ".sql") => trimspace(templatefile(
      "${local.models_dir}/ga4_reads/${file}", merge(local.model_values, { ga4_conversion_events = local.ga4_conversion_events })
    ))
  }
  # Each model's header (partition by, cluster by, replaces), as ops/refresh.py reads it: the steps of
  # models/upsert/ filled in per model, for refresh.sql's ${build.<table>}, ${clear.<table>}, ${fill.<table>},
  # ${failed.<table>} (what a failed step records), ${steps.<table>} (the three) and ${upsert.<table>} (the
  # three in a block of their own, upsert/guard.sql, whose failure leaves the other tables to be built).
  upsert_steps = ["build", "clear", "fill"]
  # What the snippet can hold back and when it starts a new session, read from the snippet browsers get (the
  # build of snippet/src), with the patterns ops/refresh.py uses: not written down a second time.
  snippet                    = file("${path.module}/../functions/loyjoy_collector/static/loyjoy-collector.min.js")
  snippet_max_queue          = tonumber(regex("maxQueue:(\\d+)", local.snippet)[0])
  snippet_session_timeout_ms = tonumber(regex("\\.last>([0-9.e]+)\\)", local.snippet)[0])
  model_upsert = {
    for name, sql in local.model_sql : name => merge(
      { for found in regexall("(?m)^-- (partition by|cluster by|replaces): (.+)$", sql) : replace(found[0], " ", "_") => trimspace(found[1]) },
      { project = var.project_id, dataset = var.dataset_id, table = name, sql = sql, error_message = "@@error.message" },
    )
  }
  # ${create.<table>}: the part of build that makes the table if missing (build includes it), for a model whose
  # scratch table refresh.sql fills itself.
  upsert_create = {
    for name, values in local.model_upsert : name => trimspace(templatefile("${local.models_dir}/upsert/create.sql", values))
  }
  upsert = merge({ create = local.upsert_create }, {
    for step in concat(local.upsert_steps, ["failed"]) : step => {
      for name, values in local.model_upsert : name => trimspace(templatefile(
        "${local.models_dir}/upsert/${step}.sql", merge(values, { create = local.upsert_create[name] })
      ))
    }
  })
  upsert_steps_joined = { for name in local.model_names : name => join("\n", [for step in local.upsert_steps : local.upsert[step][name]]) }
  # What the Looker Studio link opens (outputs.tf), every one day-partitioned.
  looker_studio_tables = concat(
    local.ga4 ? ["chat_impact", "chat_conversions"] : [],
    ["loyjoy_kpis", "funnel_daily", "sessions", "daily_counts", "opt_ins", "delivery_health", "experiments"],
    var.loyjoy_export_dataset == "" ? [] : ["loyjoy_reconciliation"],
  )
  refresh_script = templatefile("${local.models_dir}/refresh.sql", merge(local.upsert, {
    steps     = local.upsert_steps_joined
    sql       = local.model_sql # whole, for the statements refresh.sql runs by EXECUTE IMMEDIATE
    ga4_reads = local.ga4_reads
    upsert = { for name in local.model_names : name => trimspace(templatefile("${local.models_dir}/upsert/guard.sql", {
      steps  = local.upsert_steps_joined[name]
      failed = local.upsert.failed[name]
    })) }
    project                 = var.project_id
    dataset                 = var.dataset_id
    error_message           = "@@error.message"
    recent_days             = 0
    max_age_days            = 31
    max_event_age_days      = var.max_event_age_days
    lookback_minutes        = 60
    late_days_per_run       = var.analytics_late_days_per_run
    ids_per_day             = var.analytics_ids_per_day
    include_bots            = var.analytics_include_bots
    reconcile               = local.loyjoy_export != ""
    ga4                     = local.ga4
    ga4_export              = "${var.project_id}.${coalesce(var.ga4_export_dataset, var.dataset_id)}"
    ga4_start_date          = var.ga4_start_date
    ga4_conversion_events   = local.ga4_conversion_events
    attribution_window_days = var.attribution_window_days
    ga4_tables_per_read     = 200 # as GA4_TABLES_PER_READ's default
    max_queue               = local.snippet_max_queue
    session_timeout_ms      = local.snippet_session_timeout_ms
    run_at                  = "CURRENT_TIMESTAMP()"
  }))
}

data "google_project" "this" {
  project_id = var.project_id
}

# Runs the scheduled refresh: may change tables in this dataset and run query jobs, nothing else.
resource "google_service_account" "refresh" {
  project      = var.project_id
  account_id   = "${substr(var.function_name, 0, 20)}-rfsh"
  display_name = "LoyJoy collector (analyst tables refresh)"

  depends_on = [google_project_service.services]
}

resource "google_bigquery_dataset_iam_member" "refresh_writes_tables" {
  project    = var.project_id
  dataset_id = google_bigquery_dataset.loyjoy.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.refresh.email}"
}

# With LoyJoy's export: the refresh reads its facts and dimensions, nothing else of that dataset.
resource "google_bigquery_dataset_iam_member" "refresh_reads_loyjoy_export" {
  for_each = local.loyjoy_export == "" ? {} : { (local.loyjoy_export) = split(".", local.loyjoy_export) }

  project    = each.value[0]
  dataset_id = each.value[1]
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.refresh.email}"
}

# With GA4's export: the refresh reads its tables (the new days and the last three each run), nothing else.
resource "google_bigquery_dataset_iam_member" "refresh_reads_ga4_export" {
  for_each = local.ga4 ? toset([var.ga4_export_dataset]) : toset([])

  project    = var.project_id
  dataset_id = each.value
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.refresh.email}"
}

resource "google_project_iam_member" "refresh_runs_jobs" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = "serviceAccount:${google_service_account.refresh.email}"
}

# The BigQuery Data Transfer service agent runs scheduled queries as that account.
resource "google_service_account_iam_member" "transfer_agent_acts_as_refresh" {
  service_account_id = google_service_account.refresh.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-bigquerydatatransfer.iam.gserviceaccount.com"
}

# The first run, at apply: creates the analyst tables (the views read them) and builds them from the history.
# A changed script is a new job.
resource "google_bigquery_job" "analyst_tables" {
  project  = var.project_id
  job_id   = "loyjoy_analyst_tables_${substr(sha256(local.refresh_script), 0, 16)}"
  location = var.dataset_location
  labels   = local.labels

  query {
    query              = local.refresh_script
    use_legacy_sql     = false
    create_disposition = ""
    write_disposition  = ""
  }

  depends_on = [google_bigquery_table.tables]
}

resource "google_bigquery_data_transfer_config" "refresh" {
  project              = var.project_id
  display_name         = "LoyJoy analyst tables (${var.dataset_id})"
  location             = var.dataset_location
  data_source_id       = "scheduled_query"
  schedule             = var.refresh_schedule
  service_account_name = google_service_account.refresh.email

  params = {
    query = local.refresh_script
  }

  depends_on = [
    google_bigquery_job.analyst_tables,
    google_bigquery_dataset_iam_member.refresh_writes_tables,
    google_project_iam_member.refresh_runs_jobs,
    google_service_account_iam_member.transfer_agent_acts_as_refresh,
    google_bigquery_dataset_iam_member.refresh_reads_loyjoy_export,
    google_bigquery_dataset_iam_member.refresh_reads_ga4_export,
  ]
}
