"""infra/ checked without the cloud: what `terraform validate` would catch, and what only this project knows.

The google provider cannot be downloaded here, so `terraform validate` cannot run; instead every resource,
argument and nested block is checked against the provider's published schema, required arguments must be
set, references must name attributes that exist, and Terraform must agree with the code it deploys.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import hcl2
import pytest

from loyjoy_collector.schema import VIEWS_DIR, tables, views
from loyjoy_collector.settings import Settings

from . import provider_schema

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
META = {"count", "for_each", "depends_on", "lifecycle", "provider", "provisioner", "connection", "__is_block__",
        "__comments__"}  # fmt: skip
# Arguments of the two non-google providers' objects used (hashicorp/archive 2.x, hashicorp/random 3.7+).
OTHER_PROVIDERS = {
    "data.archive_file": {"type", "source_dir", "source_file", "source_content", "source_content_filename",
                          "output_path", "output_file_mode", "excludes", "exclude_symlink_directories"},
    "ephemeral.random_password": {"length", "special", "upper", "lower", "numeric", "min_upper", "min_lower",
                                  "min_numeric", "min_special", "override_special"},
}  # fmt: skip
OTHER_ATTRIBUTES = {
    "data.archive_file": {"output_sha256", "output_md5", "output_base64sha256", "output_size", "output_path"},
    "ephemeral.random_password": {"result"},
}


def unquote(name: str) -> str:
    return name.strip('"')


def parse(directory: Path) -> dict[str, list[dict[str, Any]]]:
    merged: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(directory.glob("*.tf")):
        for key, items in hcl2.loads(path.read_text()).items():
            merged.setdefault(key, []).extend(items)
    return merged


def objects(document: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(kind, type, name, body) of every resource, data source and ephemeral resource."""
    found = []
    for kind in ("resource", "data", "ephemeral"):
        for item in document.get(kind, []):
            for type_name, named in item.items():
                for name, body in named.items():
                    found.append((kind, unquote(type_name), unquote(name), body))
    return found


def is_block(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and v.get("__is_block__") for v in value)


def check_block(body: dict[str, Any], spec: provider_schema.Block, where: str) -> list[str]:
    errors: list[str] = []
    present: set[str] = set()
    for key, value in body.items():
        if key in META or key.startswith("__"):
            continue
        if key == "dynamic":
            for dynamic in value:
                for name, dyn in dynamic.items():
                    name = unquote(name)
                    present.add(name)
                    if name not in spec.blocks:
                        errors.append(f"{where}: no block '{name}'")
                        continue
                    for content in dyn.get("content", []):
                        errors += check_block(content, spec.blocks[name][1], f"{where}.{name}")
        elif is_block(value):
            present.add(key)
            if key not in spec.blocks:
                errors.append(f"{where}: no block '{key}'" + (" (it is an argument)" if key in spec.arguments else ""))
                continue
            for item in value:
                errors += check_block(item, spec.blocks[key][1], f"{where}.{key}")
        else:
            present.add(key)
            if key not in spec.arguments:
                errors.append(f"{where}: no argument '{key}'" + (" (it is a block)" if key in spec.blocks else ""))
    for name, required in spec.arguments.items():
        if required and name not in present:
            errors.append(f"{where}: required argument '{name}' is not set")
    for name, (required, _) in spec.blocks.items():
        if required and name not in present:
            errors.append(f"{where}: required block '{name}' is missing")
    return errors


@pytest.fixture(scope="module")
def schema() -> dict[str, provider_schema.Resource]:
    return provider_schema.load()


@pytest.fixture(scope="module")
def infra() -> dict[str, list[dict[str, Any]]]:
    return parse(INFRA)


def test_terraform_fmt():
    terraform = shutil.which("terraform")
    assert terraform, "the terraform binary is needed for `terraform fmt -check`"
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(INFRA)],
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CLI_CONFIG_FILE="/dev/null"),
    )
    assert result.returncode == 0, result.stdout


def test_every_resource_argument_and_block_exists_in_the_google_provider(infra, schema):
    errors, checked = [], 0
    for kind, type_name, name, body in objects(infra):
        key = f"{kind}.{type_name}"
        if key in OTHER_PROVIDERS:
            unknown = set(body) - META - OTHER_PROVIDERS[key]
            errors += [f"{key}.{name}: no argument '{a}'" for a in unknown]
            continue
        assert type_name.startswith("google_"), f"{key}: add its provider's schema to this test"
        if key not in schema:
            errors.append(f"{key}: not a resource type of the google provider {provider_schema.PROVIDER_VERSION}")
            continue
        errors += check_block(body, schema[key].block, f"{key}.{name}")
        checked += 1
    assert errors == []
    assert checked >= 15


def test_references_name_attributes_that_exist(infra, schema):
    declared = {(f"{kind}.{t}" if kind != "resource" else t, n): f"{kind}.{t}" for kind, t, n, _ in objects(infra)}
    text = "\n".join(path.read_text() for path in INFRA.glob("*.tf"))
    errors, seen = [], 0
    for prefix, type_name, name, attribute in re.findall(
        r"\b(data\.|ephemeral\.)?(google_\w+|archive_file|random_password)\.(\w+)\.(\w+)", text
    ):
        kind = {"data.": "data", "ephemeral.": "ephemeral"}.get(prefix, "resource")
        ref = f"{prefix}{type_name}" if prefix else type_name
        key = declared.get((ref, name))
        if key is None:
            errors.append(f"{ref}.{name} is not declared")
            continue
        known = OTHER_ATTRIBUTES.get(key) or schema[f"{kind}.{type_name}"].attributes
        seen += 1
        if attribute not in known:
            errors.append(f"{ref}.{name}.{attribute}: no such attribute")
    assert errors == []
    assert seen >= 20


def test_variables_have_descriptions_types_and_the_example_sets_what_is_required(infra):
    variables = {unquote(n): body for item in infra["variable"] for n, body in item.items()}
    for name, body in variables.items():
        assert body.get("description"), name
        assert body.get("type"), name
    required = {name for name, body in variables.items() if "default" not in body}
    assert required == {"project_id", "allowed_origins"}
    example = parse(INFRA / "examples" / "basic")
    [module] = [body for item in example["module"] for body in item.values()]
    assert unquote(module["source"]) == "../.."
    assert required <= set(module) and set(module) - META - {"source"} <= set(variables)
    tfvars = (INFRA / "terraform.tfvars.example").read_text()
    assert all(re.search(rf"^{name}\s*=", tfvars, re.M) for name in required)


def test_terraform_deploys_what_the_code_expects(infra):
    [function] = [b for k, t, n, b in objects(infra) if t == "google_cloudfunctions2_function"]
    build = function["build_config"][0]
    service = function["service_config"][0]

    # The entry point exists and the runtime satisfies the package's Python requirement.
    assert unquote(build["entry_point"]) == "collect"
    assert re.search(r"^from loyjoy_collector\.handler import collect$", (ROOT / "functions/main.py").read_text(), re.M)
    runtime = unquote(build["runtime"])
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = tuple(int(p) for p in re.search(r">=\s*([\d.]+)", requires).group(1).split("."))
    assert re.fullmatch(r"python3(\d+)", runtime) and (3, int(runtime[7:])) >= minimum

    # Every variable the settings need is set, and nothing is set that the code does not read.
    environment = set(service["environment_variables"])
    secrets = {unquote(s["key"]) for s in service["secret_environment_variables"]}
    read = {name.upper() for name in Settings.model_fields}
    assert {"BQ_PROJECT", "BQ_DATASET", "ALLOWED_ORIGINS", "PII_HASH_KEY"} <= environment | secrets
    assert (environment | secrets) - {"THREADS"} <= read
    assert secrets == {"PII_HASH_KEY"} and "PII_HASH_KEY" not in environment
    # functions-framework's threads match the requests Cloud Run sends an instance.
    assert service["environment_variables"]["THREADS"] == "${tostring(var.concurrency)}"
    assert service["max_instance_request_concurrency"] == "${var.concurrency}"

    # Source archive: named by content hash, built from functions/ with its pinned requirements.
    [archive] = [b for k, t, n, b in objects(infra) if t == "archive_file"]
    assert unquote(archive["source_dir"]) == "${path.module}/../functions"
    [obj] = [b for k, t, n, b in objects(infra) if t == "google_storage_bucket_object"]
    assert "data.archive_file.source.output_sha256" in obj["name"]
    lines = [line for line in (ROOT / "functions/requirements.txt").read_text().splitlines() if line[:1] not in "#"]
    assert lines and all(re.fullmatch(r"[\w.\-]+==[\w.]+", line) for line in lines), lines
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(lines) == sorted(declared)  # Cloud Build installs exactly what the package declares


def test_tables_and_views_come_from_the_shared_files(infra):
    main = (INFRA / "main.tf").read_text()
    assert 'file("${local.schema_dir}/tables.json")' in main and 'file("${local.schema_dir}/views.json")' in main
    assert '"${path.module}/../functions/loyjoy_collector/schema"' in main
    bigquery = (INFRA / "bigquery.tf").read_text()
    assert 'schema              = file("${local.schema_dir}/${each.value.schema_file}")' in bigquery
    assert bigquery.count('templatefile("${local.views_dir}/${each.key}.sql", local.view_values)') == 2
    # Every view file is declared, and every placeholder it uses is one Terraform provides.
    declared = {spec.name for spec in views()}
    assert declared == {path.stem for path in VIEWS_DIR.glob("*.sql")}
    [locals_] = [item for item in infra["locals"] if "view_values" in item]
    provided = set(locals_["view_values"])
    for spec in views():
        assert set(re.findall(r"\$\{(\w+)\}", spec.template)) <= provided, spec.name
        assert "%{" not in spec.template  # a template directive would change the SQL under templatefile()
    assert {v.tier for v in views()} <= {1, 2}
    for spec in views():
        for other in views():
            if f".{other.name}`" in spec.template:
                assert other.tier < spec.tier, f"{spec.name} reads {other.name}"
    assert set(tables()) == {"events", "events_rejected", "refresh_manifest"}


def test_the_scheduled_refresh_runs_the_same_sql_as_the_command_line(infra):
    """One source: Terraform renders models/refresh.sql with every models/<table>.sql, as ops/refresh.py does,
    runs it once at apply (the views need the tables) and on a schedule, as an account that may do only that."""
    from loyjoy_collector.ops.refresh import MODELS, MODELS_DIR, script

    analytics = (INFRA / "analytics.tf").read_text()
    assert 'fileset(local.models_dir, "*.sql")' in analytics and 'file != "refresh.sql"' in analytics
    assert '"${path.module}/../functions/loyjoy_collector/models"' in analytics
    knobs = {"project", "dataset", "recent_days", "max_age_days", "lookback_minutes"}
    assert set(re.findall(r"\$\{(\w+)\}", (MODELS_DIR / "refresh.sql").read_text())) == knobs | set(MODELS)
    for name in MODELS:
        assert set(re.findall(r"\$\{(\w+)\}", (MODELS_DIR / f"{name}.sql").read_text())) <= {"project", "dataset"}
    rendered = script("p", "d")
    assert "${" not in rendered and all(f"`p.d.{name}`" in rendered for name in MODELS)
    [transfer] = [b for k, t, n, b in objects(infra) if t == "google_bigquery_data_transfer_config"]
    assert unquote(transfer["data_source_id"]) == "scheduled_query"
    assert transfer["params"]["query"] == "${local.refresh_script}"
    [job] = [b for k, t, n, b in objects(infra) if t == "google_bigquery_job"]
    assert job["query"][0]["query"] == "${local.refresh_script}"
    roles = {unquote(b["role"]) for k, t, n, b in objects(infra) if "refresh" in b.get("member", "")}
    assert roles == {"roles/bigquery.dataEditor", "roles/bigquery.jobUser"}


def test_runtime_account_writes_to_this_dataset_only(infra):
    roles = [(t, b) for k, t, n, b in objects(infra) if t.endswith("_iam_member")]
    runtime = [(t, b) for t, b in roles if "google_service_account.runtime.email" in b["member"]]
    assert {(t, unquote(b["role"])) for t, b in runtime} == {
        ("google_bigquery_dataset_iam_member", "roles/bigquery.dataEditor"),
        ("google_secret_manager_secret_iam_member", "roles/secretmanager.secretAccessor"),
    }
    # Public invocation goes through Cloud Run's invoker role on the service, not the function's IAM.
    [public] = [b for t, b in roles if t == "google_cloud_run_service_iam_member"]
    assert (unquote(public["role"]), unquote(public["member"])) == ("roles/run.invoker", "allUsers")
    assert not [t for t, _ in roles if t.startswith("google_cloudfunctions2_function_iam")]
    # The dataset's access is managed by IAM members only: no access {} blocks to fight with.
    [dataset] = [b for k, t, n, b in objects(infra) if t == "google_bigquery_dataset"]
    assert "access" not in dataset


def test_the_hash_key_never_reaches_the_state(infra):
    [version] = [b for k, t, n, b in objects(infra) if t == "google_secret_manager_secret_version"]
    assert "secret_data" not in version
    assert version["secret_data_wo"] == "${ephemeral.random_password.pii_hash_key.result}"
    assert "random_password" not in {t for k, t, n, b in objects(infra) if k == "resource"}


CHECKOV = ROOT / ".venv-tools" / "bin" / "checkov"


def test_checkov_finds_nothing_unexplained(tmp_path):
    assert CHECKOV.exists(), "run scripts/setup: it installs checkov into .venv-tools"
    result = subprocess.run(
        [str(CHECKOV), "-d", str(INFRA), "--framework", "terraform", "--compact", "--skip-download",
         "--output", "json"],
        capture_output=True, text=True, env=dict(os.environ, BC_SKIP_MAPPING="TRUE"),
    )  # fmt: skip
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r["results"]["failed_checks"]]
    skipped = [c for r in reports for c in r["results"]["skipped_checks"]]
    passed = sum(r["summary"]["passed"] for r in reports)
    assert [f"{c['check_id']} {c['resource']}" for c in failed] == []
    assert passed >= 10
    for check in skipped:
        assert len(check["check_result"].get("suppress_comment", "")) > 20, check["check_id"]


def test_a_custom_domain_puts_the_function_behind_the_load_balancer_only(infra):
    """First-party delivery: every load balancer part exists only with custom_domain, and the function then
    takes traffic from the load balancer alone; the snippet and collector_url use the domain."""
    lb = [(t, b) for k, t, n, b in objects(infra) if t.startswith("google_compute_")]
    assert {t for t, _ in lb} >= {
        "google_compute_global_address", "google_compute_region_network_endpoint_group",
        "google_compute_backend_service", "google_compute_url_map", "google_compute_managed_ssl_certificate",
        "google_compute_target_https_proxy", "google_compute_global_forwarding_rule",
    }  # fmt: skip
    assert all(body["for_each"] == "${local.load_balancer}" for _, body in lb)
    locals_ = {k: v for item in infra["locals"] for k, v in item.items()}
    assert locals_["ingress"] == '${var.custom_domain == null ? var.ingress : "ALLOW_INTERNAL_AND_GCLB"}'
    [function] = [b for k, t, n, b in objects(infra) if t == "google_cloudfunctions2_function"]
    assert function["service_config"][0]["ingress_settings"] == "${local.ingress}"
    [neg] = [b for t, b in lb if t == "google_compute_region_network_endpoint_group"]
    assert unquote(neg["network_endpoint_type"]) == "SERVERLESS"
    outputs = {unquote(k): v for item in infra["output"] for k, v in item.items()}
    assert "local.collector_url" in outputs["collector_url"]["value"] and "dns_record" in outputs


def test_alerts_count_what_the_code_logs(infra):
    """Every log-based metric filters on an event name the collector really writes, and the four alerts exist:
    BigQuery unavailable, refusal ratio, server errors, and silence as a metric-absence condition."""
    locals_ = {k: v for item in infra["locals"] for k, v in item.items()}
    events = {unquote(spec["event"]) for spec in locals_["log_metrics"].values()}
    source = "".join(p.read_text() for p in (ROOT / "functions" / "loyjoy_collector").glob("*.py"))
    for event in events:
        assert re.search(rf'"{event}"', source), f"the code never logs event {event!r}"
    policies = {n: b for k, t, n, b in objects(infra) if t == "google_monitoring_alert_policy"}
    assert set(policies) == {"storage_unavailable", "refusal_ratio", "server_errors", "silence"}
    [absent] = policies["silence"]["conditions"][0]["condition_absent"]
    assert unquote(absent["duration"]) == "${var.silence_minutes * 60}s" and "stored" in absent["filter"]
    assert "denominator_filter" in policies["refusal_ratio"]["conditions"][0]["condition_threshold"][0]
    assert (
        'response_code_class=\\"5xx\\"'
        in policies["server_errors"]["conditions"][0]["condition_threshold"][0]["filter"]
    )
    variables = {unquote(k): v for item in infra["variable"] for k, v in item.items()}
    assert variables["alerts_enabled"]["default"] is True
    assert "1410" in variables["silence_minutes"]["validation"][0]["condition"]  # 23.5 h, Cloud Monitoring's limit
