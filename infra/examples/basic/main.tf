# The smallest deployment: a project id and the sites that send events.
#   cd infra/examples/basic && cp terraform.tfvars.example terraform.tfvars  # edit it
#   terraform init && terraform apply
#   terraform output -raw snippet          # paste into your pages (or a GTM Custom HTML tag)
#   terraform output -raw check_command    # run it after every apply: the whole path, checked

variable "project_id" {
  description = "GCP project to deploy into."
  type        = string
}

variable "allowed_origins" {
  description = "Origins of your sites, e.g. [\"https://www.example.com\"]."
  type        = list(string)
}

provider "google" {
  project = var.project_id
}

module "loyjoy_collector" {
  source = "../.."

  project_id      = var.project_id
  allowed_origins = var.allowed_origins
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
