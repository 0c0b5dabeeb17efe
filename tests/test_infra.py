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


def check_block(body: dict[str, Any], spec: provider_schema.Block, where: str, top: bool = True) -> list[str]:
    """Meta-arguments exist only at a resource's top level: in a nested block, `count` is an argument
    (rate_limit_threshold { count = ... })."""
    errors: list[str] = []
    present: set[str] = set()
    for key, value in body.items():
        if (top and key in META) or key.startswith("__"):
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
                        errors += check_block(content, spec.blocks[name][1], f"{where}.{name}", top=False)
        elif is_block(value):
            present.add(key)
            if key not in spec.blocks:
                errors.append(f"{where}: no block '{key}'" + (" (it is an argument)" if key in spec.arguments else ""))
                continue
            for item in value:
                errors += check_block(item, spec.blocks[key][1], f"{where}.{key}", top=False)
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
    knobs = {"project", "dataset", "recent_days", "max_age_days", "lookback_minutes", "include_bots"}
    assert set(re.findall(r"\$\{(\w+)\}", (MODELS_DIR / "refresh.sql").read_text())) == knobs | set(MODELS)
    for name in MODELS:
        assert set(re.findall(r"\$\{(\w+)\}", (MODELS_DIR / f"{name}.sql").read_text())) <= {"project", "dataset"}
    rendered = script("p", "d")
    assert "${" not in rendered and all(f"`p.d.{name}`" in rendered for name in MODELS)
    assert "include_bots     = var.analytics_include_bots" in analytics  # the switch, as the CLI's flag
    assert "IFNULL(false," in script("p", "d", include_bots=False) and "IFNULL(NULL," in rendered
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
    # The Cloud Armor policy has its own switch on top of custom_domain (tested below).
    assert all(body["for_each"] == "${local.load_balancer}" for t, body in lb if t != "google_compute_security_policy")
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


# ------------------------------------------------------------------ Terraform itself, without a provider
# `terraform console` needs no provider for a module of variables and locals: it checks every variable's
# validation and evaluates locals exactly as `plan` would. These tests copy variables.tf and the locals of
# cloud_armor.tf (which read variables only) into a scratch module and ask Terraform for the values.

REQUIRED_VARS = {"project_id": "my-project-1", "allowed_origins": ["https://www.example.com"]}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def top_level_blocks(text: str, kind: str) -> list[str]:
    """The `kind {` ... `}` blocks of a file that `terraform fmt` accepts (they open and close at column 0)."""
    return re.findall(rf"^{kind} \{{\n.*?^\}}\n", text, re.M | re.S)


class TerraformRefused(Exception):
    pass


def evaluate(directory: Path, expression: str, **variables: Any) -> Any:
    """The value of `expression` in the scratch module with these variables, or TerraformRefused."""
    var_file = directory / "test.tfvars.json"
    var_file.write_text(json.dumps(REQUIRED_VARS | variables))
    result = subprocess.run(
        [shutil.which("terraform") or "terraform", "console", f"-var-file={var_file}"],
        input=f"jsonencode({expression})\n", capture_output=True, text=True, cwd=directory, timeout=60,
        env=dict(os.environ, TF_CLI_CONFIG_FILE="/dev/null", TF_IN_AUTOMATION="1"),
    )  # fmt: skip
    output = ANSI.sub("", result.stdout + result.stderr)
    if result.returncode != 0 or "Error:" in output:
        raise TerraformRefused(output)
    literal = [line for line in ANSI.sub("", result.stdout).splitlines() if line.startswith('"')][-1]
    return json.loads(json.loads(literal.replace("$${", "${").replace("%%{", "%{")))


@pytest.fixture(scope="module")
def console(tmp_path_factory) -> Path:
    assert shutil.which("terraform"), "the terraform binary is needed"
    directory = tmp_path_factory.mktemp("console")
    shutil.copy(INFRA / "variables.tf", directory / "variables.tf")
    locals_ = top_level_blocks((INFRA / "cloud_armor.tf").read_text(), "locals")
    assert locals_, "cloud_armor.tf keeps its rules in a locals block"
    (directory / "cloud_armor_locals.tf").write_text("\n".join(locals_))
    return directory


def test_every_variable_default_passes_its_own_validation(console):
    """What `plan` checks first: with only the required variables set, every default is valid (a regex
    Terraform cannot compile, such as a repetition above RE2's 1000, fails every deploy)."""
    assert evaluate(console, "var.dataset_id") == "loyjoy"
    assert evaluate(console, "var.cloud_armor") == {
        "enabled": True, "requests_per_ip": 300, "interval_sec": 60, "action": "throttle",
        "ban_duration_sec": 600, "preview": False,
    }  # fmt: skip
    with pytest.raises(TerraformRefused, match="dataset_id may contain"):
        evaluate(console, "var.dataset_id", dataset_id="no-hyphens")


def test_the_security_policy_exists_only_with_custom_domain_and_is_attached_to_its_backend(console, infra):
    assert evaluate(console, "local.cloud_armor_policy") == {}
    domain = {"custom_domain": "collect.example.com"}
    assert evaluate(console, "local.cloud_armor_policy", **domain) == {"collect.example.com": True}
    assert evaluate(console, "local.cloud_armor_policy", **domain, cloud_armor={"enabled": False}) == {}
    # The policy is keyed like the load balancer, so the backend service for the domain finds it.
    [policy] = [b for k, t, n, b in objects(infra) if t == "google_compute_security_policy"]
    assert policy["for_each"] == "${local.cloud_armor_policy}"
    [backend] = [b for k, t, n, b in objects(infra) if t == "google_compute_backend_service"]
    attached = backend["security_policy"]
    assert "google_compute_security_policy.collector[each.key].id" in attached
    assert "contains(keys(local.cloud_armor_policy), each.key)" in attached


def rendered_rules(policy: dict[str, Any], rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the dynamic `rule` block of the policy makes of local.cloud_armor_rules."""
    [dynamic] = [d for item in policy["dynamic"] for n, d in item.items() if unquote(n) == "rule"]
    assert dynamic["for_each"] == "${local.cloud_armor_rules}"
    [content] = dynamic["content"]
    for key in ("priority", "description", "action"):
        assert content[key] == f"${{rule.value.{key}}}"
    [match] = content["match"]
    dynamics = {unquote(n): d for item in match["dynamic"] for n, d in item.items()}
    assert dynamics["expr"]["content"][0]["expression"] == "${expr.value}"
    [limits] = [d for item in content["dynamic"] for n, d in item.items() if unquote(n) == "rate_limit_options"]
    [options] = limits["content"]
    assert options["rate_limit_threshold"][0] == {
        "count": "${rate_limit_options.value.count}", "interval_sec": "${rate_limit_options.value.interval_sec}",
        "__is_block__": True,
    }  # fmt: skip
    return [
        rule | ({"key": unquote(options["enforce_on_key"]), "exceed": unquote(options["exceed_action"]),
                 "conform": unquote(options["conform_action"])} if rule["rate_limit"] else {})
        for rule in rules
    ]  # fmt: skip


def test_the_rate_limit_is_per_ip_answers_429_and_takes_its_thresholds_from_the_variable(console, infra):
    [policy] = [b for k, t, n, b in objects(infra) if t == "google_compute_security_policy"]
    rules = rendered_rules(policy, evaluate(console, "local.cloud_armor_rules"))
    priorities = [rule["priority"] for rule in rules]
    assert priorities == sorted(priorities) and len(set(priorities)) == len(priorities)
    # Cloud Armor stops at the first rule that matches, and a rate limit's conform action "allow" is a match:
    # the refusals come before it, the default allow last.
    *refusals, limit, default = rules
    assert all(r["action"].startswith("deny(") and r["expression"] for r in refusals)
    assert (default["priority"], default["action"], default["expression"]) == (2147483647, "allow", None)
    assert limit["expression"] is None  # every request counts
    expected = {"action": "throttle", "key": "IP", "exceed": "deny(429)", "conform": "allow"}
    assert {k: limit[k] for k in expected} == expected
    assert limit["rate_limit"] == {"count": 300, "interval_sec": 60, "ban_duration_sec": None}

    chosen = {"requests_per_ip": 120, "interval_sec": 10, "action": "rate_based_ban", "ban_duration_sec": 900}
    *_, limit, _ = evaluate(console, "local.cloud_armor_rules", cloud_armor=chosen)
    assert limit["action"] == "rate_based_ban"
    assert limit["rate_limit"] == {"count": 120, "interval_sec": 10, "ban_duration_sec": 900}


def expression_regex(expression: str) -> re.Pattern[str]:
    [pattern] = re.findall(r"\.matches\('([^']*)'\)", expression)
    return re.compile(pattern)


def test_the_refusals_let_through_exactly_what_the_collector_serves(console):
    """Methods: the routes' own, plus preflights. Bodies: a declared Content-Length above MAX_BODY_BYTES,
    checked against numbers on both sides of the limit (the regex is the rule's, run by Python's re, which
    agrees with RE2 on this syntax)."""
    from loyjoy_collector.handler import DATA_ROUTE, ROUTES

    methods_rule, body_rule, *_ = evaluate(console, "local.cloud_armor_rules")
    served = {m for route in [*ROUTES.values(), DATA_ROUTE] for m in route.methods} | {"OPTIONS"}
    assert methods_rule["expression"].startswith("!")  # the rule matches what the pattern does not
    allowed = expression_regex(methods_rule["expression"])
    for method in served | {"PUT", "DELETE", "PATCH", "TRACE", "CONNECT", "PROPFIND", "get", "POSTX", ""}:
        assert bool(allowed.fullmatch(method)) == (method in served), method

    assert body_rule["expression"].startswith("has(request.headers['content-length']) && ")
    too_long = expression_regex(body_rule["expression"])
    limit = Settings.model_fields["max_body_bytes"].default
    samples = {0, 1, 1023, limit - 1, limit, limit + 1, limit + 10, 999_999, 1_000_000, 32 * 2**20, 10**12}
    samples |= {limit + d for d in range(-1200, 1200, 7)} | {int(limit * f) for f in (0.1, 0.5, 0.99, 1.01, 2, 9)}
    for n in samples:
        assert bool(too_long.match(str(n))) == (n > limit), n
    assert too_long.match("000" + str(limit + 1)) and not too_long.match("000" + str(limit))
    assert not too_long.match("abc") and not too_long.match(f"{limit + 1}, {limit + 1}")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"interval_sec": 45}, "interval_sec is one of"),
        ({"requests_per_ip": 0}, "requests_per_ip is a whole number"),
        ({"requests_per_ip": 2.5}, "requests_per_ip is a whole number"),
        ({"requests_per_ip": 1_000_001}, "requests_per_ip is a whole number"),
        ({"requests_per_ip": 20_000, "action": "rate_based_ban"}, "requests_per_ip is a whole number"),
        ({"action": "deny"}, "action is throttle or rate_based_ban"),
        ({"ban_duration_sec": 0}, "ban_duration_sec is a whole number"),
        ({"preview": "sometimes"}, "Invalid value for input variable"),
    ],
)
def test_cloud_armor_validations_reject_bad_values(console, value, message):
    with pytest.raises(TerraformRefused, match=message):
        evaluate(console, "var.cloud_armor", custom_domain="collect.example.com", cloud_armor=value)


def test_cloud_armor_accepts_the_edges_of_its_ranges(console):
    for value in ({"requests_per_ip": 1, "interval_sec": 10}, {"requests_per_ip": 1_000_000, "interval_sec": 3600},
                  {"requests_per_ip": 10_000, "action": "rate_based_ban", "ban_duration_sec": 86400}):  # fmt: skip
        assert evaluate(console, "var.cloud_armor", cloud_armor=value).items() >= value.items()
