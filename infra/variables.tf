variable "project_id" {
  description = "GCP project to deploy into (the collector, its BigQuery dataset and the refresh of the analyst tables)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a GCP project id: 6-30 lowercase letters, digits and hyphens."
  }
}

variable "allowed_origins" {
  description = "Origins of the sites that send events (e.g. [\"https://www.example.com\"]); 'https://*.example.com' allows subdomains."
  type        = list(string)

  validation {
    condition     = length(var.allowed_origins) > 0 && alltrue([for o in var.allowed_origins : can(regex("^(https://[^/\\s]+|http://(localhost|127\\.0\\.0\\.1)(:[0-9]+)?)$", o))])
    error_message = "allowed_origins needs at least one origin like https://www.example.com (no path, no trailing slash); plain http only for localhost."
  }
}

variable "region" {
  description = "Region of the function (pick one near your visitors and in your dataset's location)."
  type        = string
  default     = "europe-west3"
}

variable "dataset_id" {
  description = "BigQuery dataset for the events, the rejected events, the analyst tables and the views beside them."
  type        = string
  default     = "loyjoy"

  validation {
    # RE2 caps a repetition at 1000, so {1,1024} would fail on every value: the length is checked apart.
    condition     = can(regex("^[A-Za-z0-9_]+$", var.dataset_id)) && length(var.dataset_id) <= 1024
    error_message = "dataset_id may contain letters, digits and underscores only."
  }
}

variable "dataset_location" {
  description = "BigQuery location (EU, US or a region). Must match your GA4 export dataset for the GA4 join."
  type        = string
  default     = "EU"
}

variable "events_retention_days" {
  description = "Days to keep each day's partition of `events`; null keeps them forever."
  type        = number
  default     = null

  validation {
    condition     = var.events_retention_days == null || try(var.events_retention_days >= 1, false)
    error_message = "events_retention_days must be at least 1, or null."
  }
}

variable "rejected_retention_days" {
  description = "Days to keep each day's partition of `events_rejected` (the payloads kept for replay)."
  type        = number
  default     = 90

  validation {
    condition     = var.rejected_retention_days == null || try(var.rejected_retention_days >= 1, false)
    error_message = "rejected_retention_days must be at least 1, or null."
  }
}

variable "deletion_protection" {
  description = "Protect the tables from `terraform destroy` and replacement. Turn off only to tear everything down."
  type        = bool
  default     = true
}

variable "function_name" {
  description = "Name of the Cloud Function (and its Cloud Run service)."
  type        = string
  default     = "loyjoy-collector"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,48}[a-z0-9]$", var.function_name))
    error_message = "function_name must be lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "min_instances" {
  description = "Instances kept warm (0 = scale to zero: cheapest, but the first request after idle pays a cold start)."
  type        = number
  default     = 0

  validation {
    condition     = var.min_instances >= 0
    error_message = "min_instances cannot be negative."
  }
}

variable "max_instances" {
  description = "Upper bound on instances: caps cost and BigQuery streaming load."
  type        = number
  default     = 10

  validation {
    condition     = var.max_instances >= 1 && var.max_instances <= 1000
    error_message = "max_instances must be between 1 and 1000."
  }
}

variable "concurrency" {
  description = "Requests one instance serves at once; the function's THREADS is set to the same number."
  type        = number
  default     = 16

  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 1000
    error_message = "concurrency must be between 1 and 1000."
  }
}

variable "cpu" {
  description = "vCPUs per instance (more than one request at a time needs at least 1)."
  type        = string
  default     = "1"
}

variable "memory" {
  description = "Memory per instance."
  type        = string
  default     = "512Mi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.memory))
    error_message = "memory is a size like 512Mi or 1Gi."
  }
}

variable "timeout_seconds" {
  description = "Request timeout; BigQuery retries give up well before it (BQ_RETRY_DEADLINE_SECONDS)."
  type        = number
  default     = 60

  validation {
    condition     = var.timeout_seconds >= 15 && var.timeout_seconds <= 3600
    error_message = "timeout_seconds must be between 15 and 3600."
  }
}

variable "ingress" {
  description = "Who may reach the function: ALLOW_ALL (browsers, the default) or ALLOW_INTERNAL_AND_GCLB (behind your own HTTPS load balancer). With custom_domain it is always ALLOW_INTERNAL_AND_GCLB."
  type        = string
  default     = "ALLOW_ALL"

  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_AND_GCLB"], var.ingress)
    error_message = "ingress is ALLOW_ALL or ALLOW_INTERNAL_AND_GCLB."
  }
}

variable "custom_domain" {
  description = "A host name of your own for the collector (collect.example.com): a global HTTPS load balancer with a Google-managed certificate in front of the function, which then takes traffic only from it. Create the DNS record in output dns_record. About 18 USD a month. null: the function's own URL."
  type        = string
  default     = null

  validation {
    condition     = var.custom_domain == null || can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.custom_domain))
    error_message = "custom_domain is a lower-case host name such as collect.example.com (no scheme, no path)."
  }
}

variable "load_balancer_log_sample_rate" {
  description = "Share of requests the load balancer logs (with custom_domain): 0 to 1."
  type        = number
  default     = 0.05

  validation {
    condition     = var.load_balancer_log_sample_rate >= 0 && var.load_balancer_log_sample_rate <= 1
    error_message = "load_balancer_log_sample_rate is between 0 and 1."
  }
}

variable "cloud_armor" {
  description = <<-EOT
    With custom_domain: a Cloud Armor security policy on the load balancer (about 9 USD a month for the
    policy and its 4 rules, plus 0.75 USD per million requests). Each client IP may send requests_per_ip
    requests per interval_sec (10, 30, 60, 120, 180, 240, 300, 600, 900, 1200, 1800, 2700 or 3600 seconds);
    above that, action "throttle" answers 429 to the excess only, "rate_based_ban" answers 429 to everything
    from that IP for ban_duration_sec. Methods the collector does not serve and bodies declaring more than its
    512 KiB are refused with 403. preview = true logs what the rules would do without enforcing them.
    The snippet keeps events refused with 429 and sends them again later (it honours Retry-After).
  EOT
  type = object({
    enabled          = optional(bool, true)
    requests_per_ip  = optional(number, 300)
    interval_sec     = optional(number, 60)
    action           = optional(string, "throttle")
    ban_duration_sec = optional(number, 600)
    preview          = optional(bool, false)
  })
  default  = {}
  nullable = false

  validation {
    condition     = contains(["throttle", "rate_based_ban"], var.cloud_armor.action)
    error_message = "cloud_armor.action is throttle or rate_based_ban."
  }

  validation {
    condition = (
      floor(var.cloud_armor.requests_per_ip) == var.cloud_armor.requests_per_ip && var.cloud_armor.requests_per_ip >= 1
      && var.cloud_armor.requests_per_ip <= (var.cloud_armor.action == "throttle" ? 1000000 : 10000)
    )
    error_message = "cloud_armor.requests_per_ip is a whole number from 1 to 1,000,000 (throttle) or to 10,000 (rate_based_ban)."
  }

  validation {
    condition     = contains([10, 30, 60, 120, 180, 240, 300, 600, 900, 1200, 1800, 2700, 3600], var.cloud_armor.interval_sec)
    error_message = "cloud_armor.interval_sec is one of 10, 30, 60, 120, 180, 240, 300, 600, 900, 1200, 1800, 2700, 3600."
  }

  validation {
    condition = (
      floor(var.cloud_armor.ban_duration_sec) == var.cloud_armor.ban_duration_sec
      && var.cloud_armor.ban_duration_sec >= 1 && var.cloud_armor.ban_duration_sec <= 86400
    )
    error_message = "cloud_armor.ban_duration_sec is a whole number of seconds from 1 to 86400."
  }
}

variable "alerts_enabled" {
  description = "Log-based metrics and alert policies: BigQuery unavailable, refusal spike, server errors, and silence (no event stored for silence_minutes)."
  type        = bool
  default     = true
}

variable "alert_emails" {
  description = "E-mail addresses the alerts go to. Empty: the policies exist and show in Cloud Monitoring, but notify no one."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.alert_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "alert_emails are e-mail addresses."
  }
}

variable "silence_minutes" {
  description = "Alert when no event was stored for this long (Cloud Monitoring allows 2 minutes to 23.5 hours). Set it above the longest quiet time of your site, e.g. a night."
  type        = number
  default     = 360

  validation {
    condition     = var.silence_minutes >= 2 && var.silence_minutes <= 1410 && floor(var.silence_minutes) == var.silence_minutes
    error_message = "silence_minutes is a whole number from 2 to 1410 (23.5 hours)."
  }
}

variable "refusal_ratio_threshold" {
  description = "Alert when more than this share of requests is refused (0 to 1) for alert_window_minutes."
  type        = number
  default     = 0.2

  validation {
    condition     = var.refusal_ratio_threshold > 0 && var.refusal_ratio_threshold <= 1
    error_message = "refusal_ratio_threshold is above 0 and at most 1."
  }
}

variable "server_errors_threshold" {
  description = "Alert when the service answers more than this many 5xx in 5 minutes."
  type        = number
  default     = 5

  validation {
    condition     = var.server_errors_threshold >= 0
    error_message = "server_errors_threshold is 0 or more."
  }
}

variable "alert_window_minutes" {
  description = "How long the refusal ratio must stay high before the alert fires."
  type        = number
  default     = 10

  validation {
    condition     = var.alert_window_minutes >= 1 && var.alert_window_minutes <= 1440 && floor(var.alert_window_minutes) == var.alert_window_minutes
    error_message = "alert_window_minutes is a whole number from 1 to 1440."
  }
}

variable "refresh_schedule" {
  description = "How often the analyst tables are refreshed (BigQuery scheduled query syntax, UTC): the delay before today's events show in Looker Studio. Each run reads only the days that received events."
  type        = string
  default     = "every 1 hours"

  validation {
    condition     = can(regex("^every ", var.refresh_schedule))
    error_message = "refresh_schedule is a scheduled query schedule such as \"every 1 hours\" or \"every 15 minutes\"."
  }
}

variable "analytics_late_days_per_run" {
  description = "Days before yesterday that one run of the analyst refresh rebuilds at most: late events (a queue that waited offline, or a sender's made-up times) change old days, and the days past this wait in refresh_manifest.pending_days for the next runs. Bounds what any sender can make an hourly run cost."
  type        = number
  default     = 3
  nullable    = false

  validation {
    condition     = var.analytics_late_days_per_run >= 1 && var.analytics_late_days_per_run <= 400 && floor(var.analytics_late_days_per_run) == var.analytics_late_days_per_run
    error_message = "analytics_late_days_per_run is a whole number of days from 1 to 400."
  }
}

variable "analytics_ids_per_day" {
  description = "Bots and processes a day that the analyst tables (daily_counts, funnel_daily, opt_ins, loyjoy_reconciliation) name, per dimension, ranked by distinct clients that day, then first seen; the events of the rest are counted under '(other)'. A sender chooses its ids: this bounds the groups it can add. The ranking is in the daily_ids table."
  type        = number
  default     = 500
  nullable    = false

  validation {
    condition     = var.analytics_ids_per_day >= 1 && floor(var.analytics_ids_per_day) == var.analytics_ids_per_day
    error_message = "analytics_ids_per_day is a whole number of 1 or more."
  }
}

variable "max_event_age_days" {
  description = "Client event times older than this many days are clamped to the time received (the collector's MAX_EVENT_AGE_DAYS), and the analyst tables count a delivery delay only between 0 and this many days: a client clock is the sender's to set."
  type        = number
  default     = 28
  nullable    = false

  validation {
    condition     = var.max_event_age_days >= 1 && var.max_event_age_days <= 30 && floor(var.max_event_age_days) == var.max_event_age_days
    error_message = "max_event_age_days is a whole number of days from 1 to 30 (BigQuery streams into partitions up to 31 days old)."
  }
}

variable "analytics_include_bots" {
  description = "Count bots (listed crawlers, headless browsers, HTTP clients such as curl on the browser protocol: events.is_bot) in the analyst tables. Rows are stored either way; changing it rebuilds the analyst tables' whole history on the next refresh."
  type        = bool
  default     = false
  nullable    = false
}

variable "kms_key_name" {
  description = "Customer-managed Cloud KMS key for the dataset and tables (projects/.../cryptoKeys/...); null: Google-managed. BigQuery's service agent needs Encrypter/Decrypter on it."
  type        = string
  default     = null
}

variable "ip_mode" {
  description = "What happens to client IPs: drop (default) or truncate (/24, /48)."
  type        = string
  default     = "drop"

  validation {
    condition     = contains(["drop", "truncate"], var.ip_mode)
    error_message = "ip_mode is drop or truncate."
  }
}

variable "data_paths" {
  description = "Paths that speak Stape's Data Client protocol (point a Data Tag's request path here)."
  type        = list(string)
  default     = ["/data"]

  validation {
    condition     = alltrue([for p in var.data_paths : can(regex("^/[A-Za-z0-9/_-]*$", p))])
    error_message = "data_paths are absolute paths like /data."
  }
}

variable "path_prefixes" {
  description = "Path prefixes a reverse proxy on your site's own domain may forward with every path (https://www.example.com/lj/...). First-party delivery: ad blockers leave it alone."
  type        = list(string)
  default     = ["/lj"]

  validation {
    condition     = alltrue([for p in var.path_prefixes : can(regex("^/?[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*/?$", p))])
    error_message = "Each path prefix is a path such as /lj or /metrics/lj."
  }
}

variable "non_loyjoy_hits" {
  description = "sGTM hits that are not LoyJoy events (a GA4 page_view): ignore (acknowledge and drop) or store."
  type        = string
  default     = "ignore"

  validation {
    condition     = contains(["ignore", "store"], var.non_loyjoy_hits)
    error_message = "non_loyjoy_hits is ignore or store."
  }
}

variable "pii_allowed_keys" {
  description = "Keys of LoyJoy's event object to keep beyond the built-in analytical ones (names or * patterns, e.g. [\"quiz_*\"]). Empty: only the built-in ones."
  type        = list(string)
  default     = []
}

variable "url_allowed_params" {
  description = "Query parameters page URLs keep beyond utm_* (except utm_term) and ad click ids, e.g. [\"page\"]. Other parameters keep their name and lose their value."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for name in var.url_allowed_params : can(regex("^[A-Za-z0-9_.\\-\\[\\]]{1,64}$", name))])
    error_message = "url_allowed_params are query parameter names (letters, digits, _ . - [ ])."
  }
}

variable "flood_limits" {
  description = "Per-instance limits a flood meets, so that the cost of a public endpoint stays bounded: events a second and at once per client address on POST /, per address on the server-side GTM routes (/data, /g/collect: far higher, since a container sends every visitor's events from few addresses) and per client_id on every protocol (answered 429 with Retry-After), and refusals stored whole a minute (past it they are counted, one row per reason and minute)."
  type = object({
    address_per_second      = optional(number, 50)
    address_burst           = optional(number, 500)
    sgtm_address_per_second = optional(number, 500)
    sgtm_address_burst      = optional(number, 5000)
    client_per_second       = optional(number, 5)
    client_burst            = optional(number, 60)
    refusals_a_minute       = optional(number, 600)
  })
  default  = {}
  nullable = false

  validation {
    condition = (var.flood_limits.address_per_second > 0 && var.flood_limits.client_per_second > 0 &&
      var.flood_limits.sgtm_address_per_second > 0 && var.flood_limits.sgtm_address_burst >= 1 &&
      floor(var.flood_limits.sgtm_address_burst) == var.flood_limits.sgtm_address_burst &&
      var.flood_limits.address_burst >= 1 && var.flood_limits.client_burst >= 1 &&
      var.flood_limits.refusals_a_minute >= 1 && floor(var.flood_limits.address_burst) == var.flood_limits.address_burst &&
      floor(var.flood_limits.client_burst) == var.flood_limits.client_burst &&
    floor(var.flood_limits.refusals_a_minute) == var.flood_limits.refusals_a_minute)
    error_message = "flood_limits: rates above 0; bursts and refusals_a_minute whole numbers of at least 1."
  }
}

variable "slow_sender_timeouts" {
  description = "Seconds a request may take to send its line and headers (from their first byte) and its body (from the end of the headers); past them it is answered 408 and its connection closed, so slow senders cannot hold an instance's threads."
  type = object({
    headers = optional(number, 5)
    body    = optional(number, 10)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.slow_sender_timeouts.headers > 0 && var.slow_sender_timeouts.body > 0 && var.slow_sender_timeouts.body <= 3600
    error_message = "slow_sender_timeouts: both above 0 seconds, the body at most an hour."
  }
}

variable "pii_hash_key_version" {
  description = "Bump to generate a new e-mail hash key (old and new hashes then no longer match)."
  type        = number
  default     = 1
}

variable "allow_unauthenticated" {
  description = "Let browsers call the function (allUsers may invoke). Organisations with the iam.allowedPolicyMemberDomains policy block this: see the README."
  type        = bool
  default     = true
}

variable "ga4_export_dataset" {
  description = "Dataset of your GA4 BigQuery export (analytics_<property id>) in this project: the refresh builds ga4_visits, chat_impact and chat_conversions from it (each run reads the new export days and the last three), and the view ga4_sessions. Null: nothing reads GA4."
  type        = string
  default     = null

  validation {
    condition     = var.ga4_export_dataset == null ? true : can(regex("^[A-Za-z0-9_]+$", var.ga4_export_dataset)) && length(var.ga4_export_dataset) <= 1024
    error_message = "ga4_export_dataset is a dataset id (letters, digits, underscores) or null."
  }
}

variable "ga4_conversion_events" {
  description = "GA4 event names counted as conversions in chat_impact, chat_conversions and experiments (a purchase once per ecommerce.transaction_id). Changing them makes the next refresh read the export again from ga4_start_date."
  type        = list(string)
  default     = ["purchase", "generate_lead"]
  nullable    = false

  validation {
    condition = length(var.ga4_conversion_events) >= 1 && length(var.ga4_conversion_events) <= 50 && alltrue([
      for name in var.ga4_conversion_events : can(regex("^[A-Za-z][A-Za-z0-9_]{0,39}$", name))
    ])
    error_message = "ga4_conversion_events holds 1 to 50 GA4 event names (a letter, then letters, digits, underscores; 40 at most)."
  }
}

variable "attribution_window_days" {
  description = "chat_conversions attributes a conversion to a chat of its client at most this many days before it; a transaction id logged again within it counts once."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = var.attribution_window_days >= 1 && var.attribution_window_days <= 90 && floor(var.attribution_window_days) == var.attribution_window_days
    error_message = "attribution_window_days is a whole number of days from 1 to 90."
  }
}

variable "ga4_start_date" {
  description = "First GA4 export day (YYYY-MM-DD) the refresh's first GA4 run reads: the day the collector went live is right. Later runs read only new days and the last three."
  type        = string
  default     = "2026-01-01"

  validation {
    condition     = can(regex("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", var.ga4_start_date))
    error_message = "ga4_start_date is a date like 2026-01-01."
  }
}

variable "labels" {
  description = "Labels for every resource that takes them."
  type        = map(string)
  default     = {}
}

variable "delivery_gap_alert" {
  description = <<-EOT
    Alert when yesterday's delivery gap rate passes threshold: events the snippet numbered that never arrived,
    as a share of those numbers (gaps / (gaps + numbered events received), from delivery_health; see the
    README's "Is anything lost?"). A BigQuery scheduled query (schedule, UTC, after the night's refreshes) fails
    when the rate is above threshold on a day when at least min_clients distinct clients had gaps (one sender is
    one client, whatever numbers it sends), and a log-based alert policy notifies alert_emails. Needs
    alerts_enabled; enabled = false turns this one off.
  EOT
  type = object({
    enabled     = optional(bool, true)
    threshold   = optional(number, 0.01)
    min_clients = optional(number, 10)
    schedule    = optional(string, "every day 06:00")
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.delivery_gap_alert.threshold > 0 && var.delivery_gap_alert.threshold < 1
    error_message = "delivery_gap_alert.threshold is a share above 0 and below 1 (0.01 = 1 %)."
  }

  validation {
    condition     = var.delivery_gap_alert.min_clients >= 1 && floor(var.delivery_gap_alert.min_clients) == var.delivery_gap_alert.min_clients
    error_message = "delivery_gap_alert.min_clients is a whole number of 1 or more."
  }

  validation {
    condition     = can(regex("^every ", var.delivery_gap_alert.schedule))
    error_message = "delivery_gap_alert.schedule is a scheduled query schedule such as \"every day 06:00\"."
  }
}

variable "loyjoy_export_dataset" {
  description = "Dataset of LoyJoy's own daily BigQuery export (its facts and dimensions tables), as dataset or project.dataset: builds loyjoy_reconciliation, the collector's counts beside LoyJoy's per day, process and event type. Empty: no reconciliation."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = can(regex("^(([a-z][a-z0-9-]{4,28}[a-z0-9]\\.)?[A-Za-z0-9_]+)?$", var.loyjoy_export_dataset)) && length(var.loyjoy_export_dataset) <= 1055
    error_message = "loyjoy_export_dataset is a dataset id (letters, digits, underscores), optionally after a project id and a dot, or empty."
  }
}
