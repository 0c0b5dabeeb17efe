# Cloud Armor on the custom_domain load balancer (var.cloud_armor, on by default with custom_domain): a per-IP
# rate limit answering 429 above the threshold, a refusal of methods the collector does not serve and of bodies
# that declare more than the collector accepts, and allow for everything else. Without custom_domain the
# function's *.run.app URL has no Cloud Armor in front of it, so there is nothing to attach to.
#
# The rules are data (local.cloud_armor_rules, built from variables alone) rendered by one dynamic block, so
# that tests/test_infra.py can evaluate them with Terraform itself, without the google provider.
locals {
  cloud_armor_policy = var.custom_domain != null && var.cloud_armor.enabled ? { (var.custom_domain) = true } : {}

  # The methods the collector's routes answer (handler.py: POST /, GET|POST /g/collect and the data paths,
  # GET|HEAD /healthy and the snippet, OPTIONS preflights).
  cloud_armor_methods = ["GET", "HEAD", "POST", "OPTIONS"]

  # Content-Length above the collector's MAX_BODY_BYTES (512 KiB, its default, which Terraform does not
  # change): Cloud Armor's rules language compares strings, so "a number above N" is a regular expression,
  # one alternative per digit of N plus any longer number. A body sent without Content-Length (chunked) is
  # not seen here; the collector's own limit still applies to it.
  cloud_armor_body_limit = "524288"
  cloud_armor_longer     = "[1-9][0-9]{${length(local.cloud_armor_body_limit)},}"
  cloud_armor_same_length = [
    for i in range(length(local.cloud_armor_body_limit)) :
    format("%s[%d-9][0-9]{%d}", substr(local.cloud_armor_body_limit, 0, i), tonumber(substr(local.cloud_armor_body_limit, i, 1)) + 1, length(local.cloud_armor_body_limit) - i - 1)
    if substr(local.cloud_armor_body_limit, i, 1) != "9"
  ]
  cloud_armor_too_long = "^0*(${join("|", concat([local.cloud_armor_longer], local.cloud_armor_same_length))})$"

  cloud_armor_rules = [
    {
      priority    = 1000
      description = "methods the collector does not serve"
      action      = "deny(403)"
      expression  = "!request.method.matches('^(${join("|", local.cloud_armor_methods)})$')"
      rate_limit  = null
    },
    {
      priority    = 1010
      description = "bodies above the collector's 512 KiB"
      action      = "deny(403)"
      expression  = "has(request.headers['content-length']) && request.headers['content-length'].matches('${local.cloud_armor_too_long}')"
      rate_limit  = null
    },
    {
      priority    = 2000
      description = "per-IP rate limit"
      action      = var.cloud_armor.action
      expression  = null # every request
      rate_limit = {
        count            = var.cloud_armor.requests_per_ip
        interval_sec     = var.cloud_armor.interval_sec
        ban_duration_sec = var.cloud_armor.action == "rate_based_ban" ? var.cloud_armor.ban_duration_sec : null
      }
    },
    {
      priority    = 2147483647
      description = "default: allow"
      action      = "allow"
      expression  = null
      rate_limit  = null
    },
  ]
}

resource "google_compute_security_policy" "collector" {
  #checkov:skip=CKV_GCP_73:The Log4j (cve-canary) WAF rule guards Java back ends; the collector is Python, and each extra rule is billed.
  for_each = local.cloud_armor_policy

  project     = var.project_id
  name        = "${var.function_name}-armor"
  description = "Per-IP rate limit and request shape for the collector on ${each.key}."
  type        = "CLOUD_ARMOR"

  dynamic "rule" {
    for_each = local.cloud_armor_rules

    content {
      priority    = rule.value.priority
      description = rule.value.description
      action      = rule.value.action
      # preview: Cloud Armor logs what a rule would do and lets the request through; the default rule has none.
      preview = rule.value.priority == 2147483647 ? null : var.cloud_armor.preview

      match {
        versioned_expr = rule.value.expression == null ? "SRC_IPS_V1" : null

        dynamic "config" {
          for_each = rule.value.expression == null ? ["*"] : []
          content {
            src_ip_ranges = [config.value]
          }
        }

        dynamic "expr" {
          for_each = rule.value.expression == null ? [] : [rule.value.expression]
          content {
            expression = expr.value
          }
        }
      }

      dynamic "rate_limit_options" {
        for_each = rule.value.rate_limit == null ? [] : [rule.value.rate_limit]
        content {
          enforce_on_key   = "IP"
          conform_action   = "allow"
          exceed_action    = "deny(429)"
          ban_duration_sec = rate_limit_options.value.ban_duration_sec

          rate_limit_threshold {
            count        = rate_limit_options.value.count
            interval_sec = rate_limit_options.value.interval_sec
          }
        }
      }
    }
  }

  depends_on = [google_project_service.services]
}
