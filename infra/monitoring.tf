# Knowing when something breaks: log-based metrics on the collector's own JSON log lines (jsonPayload.event, as
# functions/loyjoy_collector/logs.py writes them) and alert policies, e-mailed to var.alert_emails. The worst case
# is silence, not an error page: a broken deploy, a revoked role or a snippet removed from the site, noticed weeks
# later. So one policy fires when no event was stored for var.silence_minutes.
locals {
  monitoring = var.alerts_enabled ? { on = true } : {}
  service    = google_cloudfunctions2_function.collector.service_config[0].service
  log_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.service}\""
  log_metrics = {
    refusals            = { event = "refused", description = "Requests with refused input, by reason and protocol." }
    storage_unavailable = { event = "storage_unavailable", description = "Answers 503: BigQuery did not take the rows." }
    bigquery_refused    = { event = "bigquery_refused", description = "Rows BigQuery refused (kept in events_rejected)." }
    stored              = { event = "stored", description = "Once-a-minute reports of stored events, per instance." }
  }
  channels = [for channel in google_monitoring_notification_channel.email : channel.name]
}

resource "google_logging_metric" "collector" {
  for_each = var.alerts_enabled ? local.log_metrics : {}

  project     = var.project_id
  name        = "${var.function_name}/${each.key}"
  description = each.value.description
  filter      = "${local.log_filter} AND jsonPayload.event=\"${each.value.event}\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "reason"
      value_type  = "STRING"
      description = "The machine-readable reason."
    }
    labels {
      key         = "protocol"
      value_type  = "STRING"
      description = "loyjoy, data or ga4."
    }
  }

  label_extractors = {
    reason   = "EXTRACT(jsonPayload.reason)"
    protocol = "EXTRACT(jsonPayload.protocol)"
  }

  depends_on = [google_project_service.services]
}

resource "google_monitoring_notification_channel" "email" {
  for_each = var.alerts_enabled ? toset(var.alert_emails) : toset([])

  project      = var.project_id
  display_name = "LoyJoy collector: ${each.value}"
  type         = "email"
  labels       = { email_address = each.value }

  depends_on = [google_project_service.services]
}

resource "google_monitoring_alert_policy" "storage_unavailable" {
  for_each = local.monitoring

  project               = var.project_id
  display_name          = "LoyJoy collector: BigQuery unavailable"
  combiner              = "OR"
  notification_channels = local.channels

  conditions {
    display_name = "The collector answered 503 (nothing stored, senders retry)"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.collector["storage_unavailable"].name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "BigQuery did not take rows for the whole retry deadline. Browsers keep the events and retry; check the runtime service account's role on the dataset, the table, and BigQuery's status. Logs: jsonPayload.event=\"storage_unavailable\"."
  }

  alert_strategy {
    auto_close = "1800s"
  }
}

resource "google_monitoring_alert_policy" "refusal_ratio" {
  for_each = local.monitoring

  project               = var.project_id
  display_name          = "LoyJoy collector: refusal spike"
  combiner              = "OR"
  notification_channels = local.channels

  conditions {
    display_name = "More than ${var.refusal_ratio_threshold * 100}% of requests refused for ${var.alert_window_minutes} minutes"
    condition_threshold {
      filter             = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.collector["refusals"].name}\" AND resource.type=\"cloud_run_revision\""
      denominator_filter = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND resource.label.service_name=\"${local.service}\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.refusal_ratio_threshold
      duration           = "${var.alert_window_minutes * 60}s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Many requests are refused: a new origin missing from allowed_origins, a changed tag, a broken sender. events_rejected has every payload with its reason (the table rejected_by_reason counts them per day and reason); fix the cause, then `loyjoy-collector replay`."
  }

  alert_strategy {
    auto_close = "1800s"
  }
}

resource "google_monitoring_alert_policy" "server_errors" {
  for_each = local.monitoring

  project               = var.project_id
  display_name          = "LoyJoy collector: server errors"
  combiner              = "OR"
  notification_channels = local.channels

  conditions {
    display_name = "More than ${var.server_errors_threshold} 5xx answers in 5 minutes"
    condition_threshold {
      filter          = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND resource.label.service_name=\"${local.service}\" AND metric.label.response_code_class=\"5xx\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.server_errors_threshold
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The Cloud Run service behind the function answers 5xx: a failing deploy (500, see the traceback in the logs), BigQuery unavailable (503), or the platform (instance limits, timeouts)."
  }

  alert_strategy {
    auto_close = "1800s"
  }
}

resource "google_monitoring_alert_policy" "silence" {
  for_each = local.monitoring

  project               = var.project_id
  display_name          = "LoyJoy collector: no events stored"
  combiner              = "OR"
  notification_channels = local.channels

  conditions {
    display_name = "No event stored for ${var.silence_minutes} minutes"
    condition_absent {
      filter   = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.collector["stored"].name}\" AND resource.type=\"cloud_run_revision\""
      duration = "${var.silence_minutes * 60}s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "No chat event was stored for a while (this fires only after events arrived once). Check that the snippet is still on the site and consent is granted, run `loyjoy-collector check` against the collector, and look for refusals or 503s."
  }

  alert_strategy {
    auto_close = "3600s"
  }
}

# Events lost on the way (delivery_health's sequence gaps). Cloud Monitoring cannot read BigQuery, so a scheduled
# query of its own (functions/loyjoy_collector/models/checks/delivery_gaps.sql) fails with ERROR() when
# yesterday's gap rate passed var.delivery_gap_alert.threshold with gaps of at least min_clients distinct clients,
# and a log-based alert policy fires on the failed run's error log line, which carries the rate, the clients and
# the worst engine (never a host or browser name: those are the sender's text). A query of its own rather than a
# last step of the refresh: the refresh stays green when delivery is not (a failing refresh means stale tables,
# another alarm), the check reads a finished day once a day instead of a day still filling up every hour (one
# notification per bad day), and a new threshold leaves the refresh script, whose hash names the apply-time job,
# as it is.
locals {
  delivery_gap_check = var.alerts_enabled && var.delivery_gap_alert.enabled ? { on = true } : {}
  delivery_gap_sql = templatefile("${path.module}/../functions/loyjoy_collector/models/checks/delivery_gaps.sql", {
    project     = var.project_id
    dataset     = var.dataset_id
    threshold   = var.delivery_gap_alert.threshold
    min_clients = var.delivery_gap_alert.min_clients
  })
}

resource "google_bigquery_data_transfer_config" "delivery_gap_check" {
  for_each = local.delivery_gap_check

  project              = var.project_id
  display_name         = "LoyJoy delivery gap check (${var.dataset_id})"
  location             = var.dataset_location
  data_source_id       = "scheduled_query"
  schedule             = var.delivery_gap_alert.schedule
  service_account_name = google_service_account.refresh.email # reads delivery_health, runs a query job

  params = {
    query = local.delivery_gap_sql
  }

  depends_on = [
    google_bigquery_job.analyst_tables, # delivery_health exists
    google_bigquery_dataset_iam_member.refresh_writes_tables,
    google_project_iam_member.refresh_runs_jobs,
    google_service_account_iam_member.transfer_agent_acts_as_refresh,
  ]
}

resource "google_monitoring_alert_policy" "delivery_gaps" {
  for_each = local.delivery_gap_check

  project               = var.project_id
  display_name          = "LoyJoy collector: events lost on the way"
  combiner              = "OR"
  notification_channels = local.channels

  conditions {
    display_name = "Yesterday's delivery gap rate above ${var.delivery_gap_alert.threshold * 100}% (or the check failed)"
    condition_matched_log {
      filter = "resource.type=\"bigquery_dts_config\" AND resource.labels.config_id=\"${element(split("/", google_bigquery_data_transfer_config.delivery_gap_check[each.key].name), 5)}\" AND severity>=ERROR"
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Browsers numbered events that never reached the collector: the log line names the day, the gap rate, how many clients had gaps and the worst engine. Read delivery_health for that day (README: \"Is anything lost?\"): one browser or engine (an ad blocker, a broken release), one host (a page without the collector's origin allowed), or everywhere (the collector refused or was down: see the other alerts). The same alert fires when the check itself failed (delivery_health missing, a revoked role): the log line says which."
  }

  alert_strategy {
    notification_rate_limit {
      period = "3600s"
    }
    auto_close = "86400s"
  }
}

# A failing refresh: analyst tables that stop being up to date. The refresh runs each table's step alone: a step
# that fails is recorded in refresh_manifest (`failures`, and its days in `pending_days`, which the next run
# rebuilds), the other tables are built, and the run then fails with ERROR(), naming the failed tables only (an
# error message may quote a row's text). A run that fails before its steps (a revoked role) fails the same way.
# Either failure is an error line of the scheduled query's transfer run, which this policy matches.
resource "google_monitoring_alert_policy" "refresh_failed" {
  for_each = local.monitoring

  project               = var.project_id
  display_name          = "LoyJoy collector: analyst refresh failed"
  combiner              = "OR"
  notification_channels = local.channels

  conditions {
    display_name = "A run of the scheduled refresh of the analyst tables failed"
    condition_matched_log {
      filter = "resource.type=\"bigquery_dts_config\" AND resource.labels.config_id=\"${element(split("/", google_bigquery_data_transfer_config.refresh.name), 5)}\" AND severity>=ERROR"
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The scheduled refresh of the analyst tables failed. The log line names the tables whose step failed (the others are up to date); `SELECT run_at, failures, pending_days FROM <dataset>.refresh_manifest ORDER BY run_at DESC LIMIT 5` has each error whole. The next run retries the failed days by itself; once the cause is fixed (a changed table, a revoked role, a quota), `loyjoy-collector refresh --cloud` runs one at once (docs/analytics.md, \"Refresh\")."
  }

  alert_strategy {
    notification_rate_limit {
      period = "3600s"
    }
    auto_close = "86400s"
  }
}
