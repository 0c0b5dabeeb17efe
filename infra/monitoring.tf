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
    content   = "Many requests are refused: a new origin missing from allowed_origins, a changed tag, a broken sender. events_rejected (view rejected_by_reason) has every payload with its reason; fix the cause, then `loyjoy-collector replay`."
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
