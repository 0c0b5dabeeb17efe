# The smallest deployment: a project id and the sites that send events.
#   cd infra/examples/basic && cp terraform.tfvars.example terraform.tfvars  # edit it
#   terraform init && terraform apply

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

output "collector_url" {
  value = module.loyjoy_collector.collector_url
}

output "snippet" {
  value = module.loyjoy_collector.snippet
}

output "looker_studio_url" {
  value = module.loyjoy_collector.looker_studio_url
}
