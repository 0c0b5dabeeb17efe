# First-party delivery (var.custom_domain): a global external Application Load Balancer with a serverless NEG in
# front of the function and a Google-managed certificate, so the snippet talks to collect.example.com instead of
# *.run.app. uBlock Origin's and Brave's default lists (EasyPrivacy's `$ping,third-party`, paths such as
# `/collect?v=` on other sites) treat the site's own domain as the site's own. Off by default: the forwarding rule
# costs about 18 USD a month plus data processed. With it on, the function only takes traffic from the load
# balancer (ingress ALLOW_INTERNAL_AND_GCLB), so the Cloud Armor policy in cloud_armor.tf cannot be bypassed
# through the *.run.app URL.
locals {
  load_balancer = var.custom_domain == null ? {} : { (var.custom_domain) = true }
  ingress       = var.custom_domain == null ? var.ingress : "ALLOW_INTERNAL_AND_GCLB"
  collector_url = var.custom_domain == null ? "${google_cloudfunctions2_function.collector.url}/" : "https://${var.custom_domain}/"
}

resource "google_compute_global_address" "collector" {
  for_each = local.load_balancer

  project     = var.project_id
  name        = "${var.function_name}-ip"
  description = "The collector's address on ${each.key}."

  depends_on = [google_project_service.services]
}

resource "google_compute_region_network_endpoint_group" "collector" {
  for_each = local.load_balancer

  project               = var.project_id
  name                  = "${var.function_name}-neg"
  region                = var.region
  network_endpoint_type = "SERVERLESS"

  cloud_run {
    service = google_cloudfunctions2_function.collector.service_config[0].service
  }
}

resource "google_compute_backend_service" "collector" {
  for_each = local.load_balancer

  project               = var.project_id
  name                  = "${var.function_name}-backend"
  protocol              = "HTTPS"
  load_balancing_scheme = "EXTERNAL_MANAGED"

  # Cloud Armor (cloud_armor.tf) with var.cloud_armor.enabled.
  security_policy = contains(keys(local.cloud_armor_policy), each.key) ? google_compute_security_policy.collector[each.key].id : null

  backend {
    group = google_compute_region_network_endpoint_group.collector[each.key].id
  }

  log_config {
    enable      = true
    sample_rate = var.load_balancer_log_sample_rate
  }
}

resource "google_compute_url_map" "collector" {
  for_each = local.load_balancer

  project         = var.project_id
  name            = "${var.function_name}-urls"
  default_service = google_compute_backend_service.collector[each.key].id
}

resource "google_compute_managed_ssl_certificate" "collector" {
  for_each = local.load_balancer

  project = var.project_id
  name    = "${var.function_name}-cert"

  managed {
    domains = [each.key]
  }
}

resource "google_compute_ssl_policy" "collector" {
  for_each = local.load_balancer

  project         = var.project_id
  name            = "${var.function_name}-tls"
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"
}

resource "google_compute_target_https_proxy" "collector" {
  for_each = local.load_balancer

  project          = var.project_id
  name             = "${var.function_name}-https"
  url_map          = google_compute_url_map.collector[each.key].id
  ssl_certificates = [google_compute_managed_ssl_certificate.collector[each.key].id]
  ssl_policy       = google_compute_ssl_policy.collector[each.key].id
}

resource "google_compute_global_forwarding_rule" "collector" {
  for_each = local.load_balancer

  project               = var.project_id
  name                  = "${var.function_name}-https"
  target                = google_compute_target_https_proxy.collector[each.key].id
  ip_address            = google_compute_global_address.collector[each.key].id
  port_range            = "443"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  labels                = local.labels
}
