# First-party delivery: the collector on a host name of your own (collect.example.com), behind a global HTTPS
# load balancer with a Google-managed certificate. Ad blockers leave the site's own domain alone.
#   terraform init && terraform apply
#   terraform output dns_record   # create this A record at your DNS provider; the certificate follows
# Or keep the default URL and route https://www.example.com/lj/ to output function_url in your own reverse proxy.

variable "project_id" {
  description = "GCP project to deploy into."
  type        = string
}

variable "allowed_origins" {
  description = "Origins of your sites, e.g. [\"https://www.example.com\"]."
  type        = list(string)
}

variable "custom_domain" {
  description = "The collector's host name, e.g. collect.example.com."
  type        = string
}

provider "google" {
  project = var.project_id
}

module "loyjoy_collector" {
  source = "../.."

  project_id      = var.project_id
  allowed_origins = var.allowed_origins
  custom_domain   = var.custom_domain

  # Cloud Armor comes with custom_domain: 300 requests a minute per client IP, then 429 for the excess.
  # Try new limits with preview = true first (the load balancer's logs show what would be refused):
  # cloud_armor = { requests_per_ip = 600, interval_sec = 60, preview = true }
}

# Every output of the module, passed through (infra/README.md describes them; tests/test_docs.py keeps the
# list complete).
output "collector_url" {
  value = module.loyjoy_collector.collector_url
}

output "function_url" {
  value = module.loyjoy_collector.function_url
}

output "dns_record" {
  value = module.loyjoy_collector.dns_record
}

output "snippet" {
  value = module.loyjoy_collector.snippet
}

output "events_table" {
  value = module.loyjoy_collector.events_table
}

output "rejected_table" {
  value = module.loyjoy_collector.rejected_table
}

output "views" {
  value = module.loyjoy_collector.views
}

output "looker_studio_url" {
  value = module.loyjoy_collector.looker_studio_url
}

output "check_command" {
  value = module.loyjoy_collector.check_command
}

output "erase_command" {
  value = module.loyjoy_collector.erase_command
}
