output "collector_url" {
  description = "Where the snippet sends events: https://<custom_domain>/ with a custom domain, else the function's URL."
  value       = local.collector_url
}

output "function_url" {
  description = "The function's own URL (what a site's reverse proxy forwards /lj/ to)."
  value       = "${google_cloudfunctions2_function.collector.url}/"
}

output "dns_record" {
  description = "With custom_domain: the DNS record to create (the certificate is issued once it resolves). null otherwise."
  value = var.custom_domain == null ? null : {
    name  = "${var.custom_domain}."
    type  = "A"
    value = google_compute_global_address.collector[var.custom_domain].address
  }
}

output "snippet" {
  description = "The snippet to paste into your pages (or a GTM Custom HTML tag), with the collector URL filled in."
  value = templatefile("${path.module}/snippet.html.tftpl", {
    collector_url = local.collector_url
  })
}

output "events_table" {
  description = "Table id of the events."
  value       = "${var.project_id}.${google_bigquery_dataset.loyjoy.dataset_id}.${google_bigquery_table.tables["events"].table_id}"
}

output "rejected_table" {
  description = "Table id of the refused input, with reasons and scrubbed payloads."
  value       = "${var.project_id}.${google_bigquery_dataset.loyjoy.dataset_id}.${google_bigquery_table.tables["events_rejected"].table_id}"
}

output "views" {
  description = "Ids of the views beside the analyst tables: events_dedup (every event once) and, with ga4_export_dataset, ga4_sessions (chat sessions joined to the ga4_visits table)."
  value       = [for name in sort(keys(local.views)) : "${var.project_id}.${var.dataset_id}.${name}"]
}

output "looker_studio_url" {
  description = "Opens a new Looker Studio report on the analyst tables (Linking API): with ga4_export_dataset chat_impact and chat_conversions first, then loyjoy_kpis, funnel_daily, sessions, daily_counts, opt_ins, delivery_health, experiments and, with loyjoy_export_dataset, loyjoy_reconciliation. Each is day-partitioned and marked so (isPartitioned): its partition column (`day`; `event_date` in delivery_health) is the report's date range dimension, so each chart reads the days it shows."
  value = join("&", concat(
    ["https://lookerstudio.google.com/reporting/create?c.mode=edit", "r.reportName=${urlencode("LoyJoy chats")}"],
    flatten([
      for index, table in local.looker_studio_tables : [
        "ds.ds${index}.connector=bigQuery",
        "ds.ds${index}.type=TABLE",
        "ds.ds${index}.projectId=${var.project_id}",
        "ds.ds${index}.datasetId=${var.dataset_id}",
        "ds.ds${index}.tableId=${table}",
        "ds.ds${index}.isPartitioned=true",
        "ds.ds${index}.datasourceName=${urlencode("LoyJoy ${table}")}",
      ]
    ])
  ))

  depends_on = [google_bigquery_job.analyst_tables, google_bigquery_table.views_tier2]
}

output "check_command" {
  description = "Run after every apply: health, CORS for your first origin, the snippet, a test event stored and read back (left out of the analyst tables), a refusal kept. Non-zero exit on failure."
  value       = "BQ_PROJECT=${var.project_id} BQ_DATASET=${var.dataset_id} loyjoy-collector check ${local.collector_url} --origin ${var.allowed_origins[0]} --cloud"
}

output "erase_command" {
  description = "How to erase one person (GDPR Art. 17): the deployed key is read from Secret Manager; add --dry-run to count first."
  value       = "BQ_PROJECT=${var.project_id} BQ_DATASET=${var.dataset_id} loyjoy-collector erase --email ADDRESS --secret ${google_secret_manager_secret.pii_hash_key.secret_id} --cloud"
}
