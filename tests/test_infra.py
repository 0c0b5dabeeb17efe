"""infra/ checked without the cloud: what `terraform validate` would catch, and what only this project knows.

The google provider cannot be downloaded here, so `terraform validate` cannot run; instead every resource,
argument and nested block is checked against the provider's published schema, required arguments must be
set, references must name attributes that exist, and Terraform must agree with the code it deploys: what
Terraform would plan is evaluated by `terraform console` (tests/terraform_offline.py) and compared with what the
code reads, never the .tf files' text.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import hcl2
import pytest

from loyjoy_collector.schema import VIEWS_DIR, tables, views
from loyjoy_collector.settings import Settings
from tools.infra_docs import expression

from . import provider_schema, terraform_offline
from .terraform_offline import TerraformRefused, evaluate, instances_expression

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
META = {
    "count",
    "for_each",
    "depends_on",
    "lifecycle",
    "provider",
    "provisioner",
    "connection",
    "__is_block__",
    "__comments__",
}
# Arguments of the two non-google providers' objects used (hashicorp/archive 2.x, hashicorp/random 3.7+).
OTHER_PROVIDERS = {
    "data.archive_file": {
        "type",
        "source_dir",
        "source_file",
        "source_content",
        "source_content_filename",
        "output_path",
        "output_file_mode",
        "excludes",
        "exclude_symlink_directories",
    },
    "ephemeral.random_password": {
        "length",
        "special",
        "upper",
        "lower",
        "numeric",
        "min_upper",
        "min_lower",
        "min_numeric",
        "min_special",
        "override_special",
    },
}
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


# ------------------------------------------------------------------ Terraform itself, without a provider
# tests/terraform_offline.py: `terraform console` on variables.tf and infra's locals, with stand-ins for what
# only the cloud knows ("<google_x.name.attr>"). What a resource would be planned with is evaluated there, so
# these tests check values Terraform computes, not how the .tf files spell them.


@pytest.fixture(scope="module")
def console(tmp_path_factory) -> Path:
    return terraform_offline.build(tmp_path_factory.mktemp("console"))


def resource(infra: dict[str, list[dict[str, Any]]], type_name: str, name: str | None = None) -> dict[str, Any]:
    found = {n: b for k, t, n, b in objects(infra) if k == "resource" and t == type_name}
    if name is None:
        [body] = found.values()
        return body
    return found[name]


def planned(
    console: Path, infra: dict[str, list[dict[str, Any]]], type_name: str, name: str | None = None, **variables: Any
) -> Any:
    """What Terraform would plan for a resource: every instance (by each.key, or a list for count)."""
    return evaluate(console, instances_expression(resource(infra, type_name, name)), **variables)


def planned_instances(
    console: Path, infra: dict[str, list[dict[str, Any]]], type_name: str, name: str | None = None, **variables: Any
) -> list[dict[str, Any]]:
    value = planned(console, infra, type_name, name, **variables)
    body = resource(infra, type_name, name)
    return list(value.values()) if "for_each" in body else value if "count" in body else [value]


def bindings(
    console: Path, infra: dict[str, list[dict[str, Any]]], member: str, **variables: Any
) -> set[tuple[str, str]]:
    """(resource type, role) of every IAM member binding granted to member."""
    found = set()
    for type_name, name in {(t, n) for k, t, n, b in objects(infra) if t.endswith("_iam_member")}:
        for binding in planned_instances(console, infra, type_name, name, **variables):
            if binding["member"] == member:
                found.add((type_name, binding["role"]))
    return found


def output(console: Path, infra: dict[str, list[dict[str, Any]]], name: str, **variables: Any) -> Any:
    outputs = {unquote(k): v for item in infra["output"] for k, v in item.items()}
    return evaluate(console, expression(outputs[name]["value"]), **variables)


EVERY_OPTION = {
    "custom_domain": "collect.example.com",
    "alert_emails": ["ops@example.com"],
    "ga4_export_dataset": "analytics_123",
    "kms_key_name": "projects/p/locations/eu/keyRings/r/cryptoKeys/k",
    "events_retention_days": 790,
    "analytics_include_bots": True,
    "allow_unauthenticated": False,
    "labels": {"team": "web"},
    "cloud_armor": {"preview": True, "action": "rate_based_ban"},
}


@pytest.mark.parametrize("variables", [{}, EVERY_OPTION], ids=["defaults", "every-option"])
def test_every_resource_and_output_evaluates(console, infra, variables):
    """What `validate` and `plan` would catch in an expression (a wrong type, a missing attribute of a
    variable, a function called wrongly), for every resource and output, with the defaults and with every
    option on."""
    resources = [(t, n, b) for k, t, n, b in objects(infra) if k == "resource"]
    outputs = {unquote(k): v for item in infra["output"] for k, v in item.items()}
    everything = ", ".join(
        [f'"{t}.{n}" = {instances_expression(b)}' for t, n, b in resources]
        + [f'"output.{name}" = {expression(body["value"])}' for name, body in outputs.items()]
    )
    values = evaluate(console, "{" + everything + "}", **variables)
    assert len(values) == len(resources) + len(outputs) and len(resources) >= 30


def test_every_variable_default_passes_its_own_validation(console):
    """What `plan` checks first: with only the required variables set, every default is valid (a regex
    Terraform cannot compile, such as a repetition above RE2's 1000, fails every deploy)."""
    assert evaluate(console, "var.dataset_id") == "loyjoy"
    assert evaluate(console, "var.cloud_armor") == {
        "enabled": True,
        "requests_per_ip": 300,
        "interval_sec": 60,
        "action": "throttle",
        "ban_duration_sec": 600,
        "preview": False,
    }
    with pytest.raises(TerraformRefused, match="dataset_id may contain"):
        evaluate(console, "var.dataset_id", dataset_id="no-hyphens")


def test_variables_have_descriptions_types_and_the_examples_set_what_is_required(infra, console, tmp_path):
    variables = {unquote(n): body for item in infra["variable"] for n, body in item.items()}
    for name, body in variables.items():
        assert body.get("description"), name
        assert body.get("type"), name
    required = {name for name, body in variables.items() if "default" not in body}
    assert required == {"project_id", "allowed_origins"}
    examples = sorted(path.parent for path in (INFRA / "examples").glob("*/main.tf"))
    assert [path.name for path in examples] == ["basic", "first_party"]
    for directory in examples:
        [module] = [body for item in parse(directory)["module"] for body in item.values()]
        assert unquote(module["source"]) == "../..", directory.name
        arguments = set(module) - META - {"source"}
        assert required <= arguments <= set(variables), directory.name
        # Each argument is the example's variable of the same name, so the example's tfvars are the module's.
        assert all(module[name] == f"${{var.{name}}}" for name in arguments), directory.name
        tfvars = directory / "terraform.tfvars.example"
        given = evaluate(console, "{" + ", ".join(f"{n} = var.{n}" for n in sorted(arguments)) + "}", var_file=tfvars)
        assert set(given) == arguments and all(given[n] is not None for n in arguments), directory.name

    # The root's example: the required values pass their validations, and so does every optional line shown
    # commented out, each naming a variable that exists.
    example = (INFRA / "terraform.tfvars.example").read_text()
    evaluate(console, "var.allowed_origins", var_file=INFRA / "terraform.tfvars.example")
    optional = re.findall(r"^#[ \t]*(\w+)[ \t]*=[ \t]*(.*?)[ \t]*(?:#.*)?$", example, re.M)
    assert len(optional) >= 10 and {name for name, _ in optional} <= set(variables) - required
    uncommented = tmp_path / "all.tfvars"
    uncommented.write_text(re.sub(r"^#[ \t]*(\w+[ \t]*=)", r"\1", example, flags=re.M))
    shown = evaluate(console, "{" + ", ".join(f"{n} = var.{n}" for n, _ in optional) + "}", var_file=uncommented)
    assert shown["ip_mode"] == "drop" and shown["cloud_armor"]["requests_per_ip"] == 300


def test_terraform_deploys_what_the_code_expects(infra, console, monkeypatch):
    chosen = {
        "concurrency": 7,
        "data_paths": ["/data", "/stape"],
        "flood_limits": {"address_per_second": 25},
        "slow_sender_timeouts": {"headers": 3},
        "custom_domain": "collect.example.com",
    }
    function = planned(console, infra, "google_cloudfunctions2_function", **chosen)
    [build] = function["build_config"]
    [service] = function["service_config"]

    # The entry point is what functions/main.py gives functions-framework, and the runtime satisfies the
    # package's Python requirement.
    assert build["entry_point"] == "collect"
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import runpy, sys; from loyjoy_collector.handler import collect; "
            f"sys.exit(runpy.run_path({str(ROOT / 'functions/main.py')!r})[{build['entry_point']!r}] is not collect)",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT / "functions",
        timeout=60,
    )
    assert loaded.returncode == 0, loaded.stderr
    runtime = build["runtime"]
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = tuple(int(p) for p in re.search(r">=\s*([\d.]+)", requires).group(1).split("."))
    assert re.fullmatch(r"python3(\d+)", runtime) and (3, int(runtime[7:])) >= minimum

    # Every variable the settings need is set, and nothing is set that the code does not read.
    environment = service["environment_variables"]
    secrets = {s["key"] for s in service["secret_environment_variables"]}
    read = {name.upper() for name in Settings.model_fields}
    assert {"BQ_PROJECT", "BQ_DATASET", "ALLOWED_ORIGINS", "PII_HASH_KEY"} <= set(environment) | secrets
    assert (set(environment) | secrets) - {"THREADS"} <= read
    assert secrets == {"PII_HASH_KEY"} and "PII_HASH_KEY" not in environment
    # functions-framework's threads match the requests Cloud Run sends an instance.
    assert (environment["THREADS"], service["max_instance_request_concurrency"]) == ("7", 7)
    # What Terraform sets is what the settings read it as.
    for name in read:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BQ_DATASET", "loyjoy")  # Terraform's is the dataset resource's id, known after apply
    settings = Settings()
    assert settings.bq_project == "my-project-1" and list(settings.allowed_origins) == ["https://www.example.com"]
    assert list(settings.data_paths) == ["/data", "/stape"] and settings.rate_limit_address_per_second == 25
    assert settings.header_timeout_seconds == 3 and settings.body_timeout_seconds == 10
    assert settings.client_address_hop == 2  # behind the load balancer, whose own entry is the last
    without = planned(console, infra, "google_cloudfunctions2_function")["service_config"][0]
    assert without["environment_variables"]["CLIENT_ADDRESS_HOP"] == "1"  # Cloud Run's own entry is the last

    # Source archive: named by content hash, built from functions/ with its pinned requirements.
    [archive] = [b for k, t, n, b in objects(infra) if t == "archive_file"]
    source_dir = evaluate(console, expression(archive["source_dir"]))
    assert (console / source_dir).resolve() == (ROOT / "functions").resolve()
    obj = planned(console, infra, "google_storage_bucket_object")
    assert "<data.archive_file.source.output_sha256>" in obj["name"]  # a new archive is a new object
    lines = [line for line in (ROOT / "functions/requirements.txt").read_text().splitlines() if line[:1] not in "#"]
    assert lines and all(re.fullmatch(r"[\w.\-]+==[\w.]+", line) for line in lines), lines
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(lines) == sorted(declared)  # Cloud Build installs exactly what the package declares


def test_tables_and_views_come_from_the_shared_files(infra, console):
    """Terraform creates the tables with the schemas the code reads, and the views with the SQL bootstrap
    renders, tier by tier."""
    created = planned(console, infra, "google_bigquery_table", "tables", events_retention_days=30)
    assert set(created) == set(tables()) == {"events", "events_rejected", "refresh_manifest"}
    for name, spec in tables().items():
        table = created[name]
        assert json.loads(table["schema"]) == spec.bigquery_fields, name  # what bootstrap creates too
        assert table["clustering"] == (spec.clustering or None), name
        [partitioning] = table["time_partitioning"]
        assert (partitioning["type"], partitioning["field"]) == ("DAY", spec.partition_field), name
    retention = {name: t["time_partitioning"][0]["expiration_ms"] for name, t in created.items()}
    assert retention == {"events": 30 * 86400000, "events_rejected": 90 * 86400000, "refresh_manifest": 30 * 86400000}

    ga4 = {"ga4_export_dataset": "analytics_123", "ga4_start_date": "2026-02-03"}
    values = {
        "project": "my-project-1",
        "dataset": "loyjoy",
        "ga4_dataset": "analytics_123",
        "ga4_start_suffix": "20260203",
    }
    assert {v.tier for v in views()} <= {1, 2}
    for options in ({}, ga4):
        wanted = {v.name: v for v in views() if v.requires is None or options}
        made = {}
        for tier in (1, 2):
            made_here = planned(console, infra, "google_bigquery_table", f"views_tier{tier}", **options)
            assert set(made_here) == {n for n, v in wanted.items() if v.tier == tier}, (tier, options)
            made |= made_here
        assert set(made) == set(wanted)
        for name, table in made.items():
            [view] = table["view"]
            assert view["use_legacy_sql"] is False
            if options:  # rendered by Terraform's templatefile() as by bootstrap (schema.ViewSpec.render)
                assert view["query"] == wanted[name].render(values), name
    # Every view file is declared; a view reads only tables and views of lower tiers.
    assert {spec.name for spec in views()} == {path.stem for path in VIEWS_DIR.glob("*.sql")}
    for spec in views():
        for other in views():
            if f".{other.name}`" in spec.template:
                assert other.tier < spec.tier, f"{spec.name} reads {other.name}"


def test_the_scheduled_refresh_runs_the_same_sql_as_the_command_line(infra, console):
    """One source: Terraform renders models/refresh.sql with every models/<table>.sql into what
    `loyjoy-collector refresh` runs, runs it once at apply (the views need the tables) and on a schedule, as an
    account that may do only that; analytics_include_bots is the CLI's --include-bots."""
    from loyjoy_collector.ops.refresh import MODELS, script

    assert evaluate(console, "local.model_names") == list(MODELS)
    scripts = {}
    for bots in (False, True):
        transfer = planned(
            console,
            infra,
            "google_bigquery_data_transfer_config",
            "refresh",
            analytics_include_bots=bots,
            refresh_schedule="every 15 minutes",
        )
        assert (transfer["data_source_id"], transfer["schedule"]) == ("scheduled_query", "every 15 minutes")
        [query] = planned(console, infra, "google_bigquery_job", analytics_include_bots=bots)["query"]
        expected = script("my-project-1", "loyjoy", include_bots=bots, ga4_start_date=date(2026, 1, 1))
        assert query["query"] == transfer["params"]["query"] == expected
        scripts[bots] = query["query"]
    assert scripts[False] != scripts[True]  # the switch reaches the SQL
    # With GA4's export and its settings: the same script as the command line's with the same settings.
    ga4 = {
        "ga4_export_dataset": "analytics_123",
        "ga4_start_date": "2026-02-03",
        "ga4_conversion_events": ["purchase", "sign_up"],
        "attribution_window_days": 14,
    }
    [query] = planned(console, infra, "google_bigquery_job", **ga4)["query"]
    assert query["query"] == script(
        "my-project-1",
        "loyjoy",
        include_bots=False,
        ga4_export_dataset="analytics_123",
        ga4_start_date=date(2026, 2, 3),
        ga4_conversion_events=("purchase", "sign_up"),
        attribution_window_days=14,
    )
    assert "['purchase', 'sign_up']" in query["query"] and "INTERVAL 14 DAY" in query["query"]
    assert "`my-project-1.analytics_123.events_*`" in query["query"] and "IF true THEN" in query["query"]
    reads = bindings(console, infra, "serviceAccount:<google_service_account.refresh.email>", **ga4)
    assert ("google_bigquery_dataset_iam_member", "roles/bigquery.dataViewer") in reads
    for bad in ({"ga4_conversion_events": ["purchase'; DROP"]}, {"ga4_conversion_events": []}):
        with pytest.raises(TerraformRefused, match="ga4_conversion_events"):
            evaluate(console, "var.ga4_conversion_events", **bad)
    with pytest.raises(TerraformRefused, match="attribution_window_days"):
        evaluate(console, "var.attribution_window_days", attribution_window_days=0)
    rendered = scripts[False]
    assert "${" not in rendered and all(f"`my-project-1.loyjoy.{name}`" in rendered for name in MODELS)
    refresh = bindings(console, infra, "serviceAccount:<google_service_account.refresh.email>")
    assert {role for _, role in refresh} == {"roles/bigquery.dataEditor", "roles/bigquery.jobUser"}


def test_runtime_account_writes_to_this_dataset_only(infra, console):
    assert bindings(console, infra, "serviceAccount:<google_service_account.runtime.email>") == {
        ("google_bigquery_dataset_iam_member", "roles/bigquery.dataEditor"),
        ("google_secret_manager_secret_iam_member", "roles/secretmanager.secretAccessor"),
    }
    # Public invocation goes through Cloud Run's invoker role on the service, not the function's IAM.
    [public] = planned(console, infra, "google_cloud_run_service_iam_member")
    assert (public["role"], public["member"]) == ("roles/run.invoker", "allUsers")
    assert public["service"] == "<google_cloudfunctions2_function.collector.name>"
    assert planned(console, infra, "google_cloud_run_service_iam_member", allow_unauthenticated=False) == []
    assert not [t for k, t, n, b in objects(infra) if t.startswith("google_cloudfunctions2_function_iam")]
    # The dataset's access is managed by IAM members only: no access {} blocks to fight with.
    assert "access" not in planned(console, infra, "google_bigquery_dataset")


def test_the_hash_key_never_reaches_the_state(infra, console):
    version = planned(console, infra, "google_secret_manager_secret_version", pii_hash_key_version=2)
    assert "secret_data" not in version
    assert version["secret_data_wo"] == "<ephemeral.random_password.pii_hash_key.result>"
    assert version["secret_data_wo_version"] == 2  # a new version, a new key
    assert "random_password" not in {t for k, t, n, b in objects(infra) if k == "resource"}


CHECKOV = ROOT / ".venv-tools" / "bin" / "checkov"


def test_checkov_finds_nothing_unexplained(tmp_path):
    assert CHECKOV.exists(), "run scripts/setup: it installs checkov into .venv-tools"
    result = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(INFRA),
            "--framework",
            "terraform",
            "--compact",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, BC_SKIP_MAPPING="TRUE"),
    )
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r["results"]["failed_checks"]]
    skipped = [c for r in reports for c in r["results"]["skipped_checks"]]
    passed = sum(r["summary"]["passed"] for r in reports)
    assert [f"{c['check_id']} {c['resource']}" for c in failed] == []
    assert passed >= 10
    for check in skipped:
        assert len(check["check_result"].get("suppress_comment", "")) > 20, check["check_id"]


DOMAIN = {"custom_domain": "collect.example.com"}


def test_a_custom_domain_puts_the_function_behind_the_load_balancer_only(infra, console):
    """First-party delivery: every load balancer part exists only with custom_domain, and the function then
    takes traffic from the load balancer alone; the snippet and collector_url use the domain."""
    lb = {t for k, t, n, b in objects(infra) if t.startswith("google_compute_")}
    assert lb >= {
        "google_compute_global_address",
        "google_compute_region_network_endpoint_group",
        "google_compute_backend_service",
        "google_compute_url_map",
        "google_compute_managed_ssl_certificate",
        "google_compute_target_https_proxy",
        "google_compute_global_forwarding_rule",
    }

    def every(**variables: Any) -> dict[str, Any]:
        parts = ", ".join(f'"{t}" = {instances_expression(resource(infra, t))}' for t in sorted(lb))
        return evaluate(console, "{" + parts + "}", **variables)

    assert every() == {t: {} for t in lb}  # without custom_domain, no part of it
    # The Cloud Armor policy has its own switch on top of custom_domain (tested below).
    with_domain = {t: set(instances) for t, instances in every(**DOMAIN, cloud_armor={"enabled": False}).items()}
    assert with_domain == {t: set() if t == "google_compute_security_policy" else {"collect.example.com"} for t in lb}
    [neg] = planned(console, infra, "google_compute_region_network_endpoint_group", **DOMAIN).values()
    assert neg["network_endpoint_type"] == "SERVERLESS"
    assert neg["cloud_run"] == [{"service": "<google_cloudfunctions2_function.collector.service_config[0].service>"}]

    def ingress(**variables: Any) -> str:
        function = planned(console, infra, "google_cloudfunctions2_function", **variables)
        return function["service_config"][0]["ingress_settings"]

    assert ingress() == "ALLOW_ALL"
    assert ingress(ingress="ALLOW_INTERNAL_AND_GCLB") == "ALLOW_INTERNAL_AND_GCLB"
    assert ingress(**DOMAIN) == ingress(**DOMAIN, ingress="ALLOW_ALL") == "ALLOW_INTERNAL_AND_GCLB"

    assert output(console, infra, "collector_url") == "<google_cloudfunctions2_function.collector.url>/"
    assert output(console, infra, "collector_url", **DOMAIN) == "https://collect.example.com/"
    assert '"https://collect.example.com/loyjoy-collector.js"' in output(console, infra, "snippet", **DOMAIN)
    assert output(console, infra, "dns_record") is None
    record = output(console, infra, "dns_record", **DOMAIN)
    assert (record["name"], record["type"]) == ("collect.example.com.", "A")
    assert record["value"] == "<google_compute_global_address.collector[var.custom_domain].address>"


def logged_events() -> set[str]:
    """The event names the collector's code passes to logs.emit (its third argument, a literal)."""
    found = set()
    for path in (ROOT / "functions" / "loyjoy_collector").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "emit":
                event = node.args[2] if len(node.args) > 2 else next(k.value for k in node.keywords if k.arg == "event")
                if isinstance(event, ast.Constant) and isinstance(event.value, str):
                    found.add(event.value)
    return found


def test_alerts_count_what_the_code_logs(infra, console):
    """Every log-based metric filters on an event name the collector really writes, and the four alerts exist:
    BigQuery unavailable, refusal ratio, server errors, and silence as a metric-absence condition."""
    metrics = planned(console, infra, "google_logging_metric")
    events = {name: re.findall(r'jsonPayload\.event="(\w+)"', metric["filter"]) for name, metric in metrics.items()}
    assert all(len(found) == 1 for found in events.values()), events
    logged = logged_events()
    assert {"start", "refused", "stored"} <= logged  # the walk still finds the calls
    for [event] in events.values():
        assert event in logged, f"the code never logs event {event!r} (logs.emit(level, message, event, ...))"
    names = {n for k, t, n, b in objects(infra) if t == "google_monitoring_alert_policy"}
    assert names == {
        "storage_unavailable",
        "refusal_ratio",
        "server_errors",
        "silence",
        "delivery_gaps",
        "refresh_failed",
    }
    policies = {n: planned(console, infra, "google_monitoring_alert_policy", n, silence_minutes=90) for n in names}
    assert all(set(policy) == {"on"} for policy in policies.values())  # one of each, with alerts_enabled
    [silence] = policies["silence"]["on"]["conditions"]
    [absent] = silence["condition_absent"]
    assert absent["duration"] == "5400s" and "collector['stored']" in absent["filter"]
    [ratio] = policies["refusal_ratio"]["on"]["conditions"][0]["condition_threshold"]
    assert ratio["denominator_filter"]
    [errors] = policies["server_errors"]["on"]["conditions"][0]["condition_threshold"]
    assert 'response_code_class="5xx"' in errors["filter"]
    off = {"alerts_enabled": False}
    assert planned(console, infra, "google_logging_metric", **off) == {}
    assert all(planned(console, infra, "google_monitoring_alert_policy", n, **off) == {} for n in names)
    # Cloud Monitoring's limit for an absence condition is 23.5 hours.
    assert evaluate(console, "var.silence_minutes", silence_minutes=1410) == 1410
    with pytest.raises(TerraformRefused, match="silence_minutes"):
        evaluate(console, "var.silence_minutes", silence_minutes=1411)


def test_a_failed_refresh_alerts_on_the_error_lines_of_the_scheduled_refresh(infra, console):
    """The refresh fails as a whole when a table's step failed (tests/test_refresh.py): the policy matches the error
    lines of that transfer config's runs, and of no other, with the rate limit a log-match condition needs."""
    [policy] = planned(console, infra, "google_monitoring_alert_policy", "refresh_failed").values()
    [condition] = policy["conditions"][0]["condition_matched_log"]
    assert condition["filter"] == (
        'resource.type="bigquery_dts_config" AND '
        'resource.labels.config_id="<google_bigquery_data_transfer_config.refresh.name>" AND severity>=ERROR'
    )
    [strategy] = policy["alert_strategy"]
    assert strategy["notification_rate_limit"][0]["period"] == "3600s"


def test_the_security_policy_exists_only_with_custom_domain_and_is_attached_to_its_backend(console, infra):
    def policies(**variables: Any) -> set[str]:
        return set(planned(console, infra, "google_compute_security_policy", **variables))

    def attached(**variables: Any) -> Any:
        [backend] = planned(console, infra, "google_compute_backend_service", **DOMAIN, **variables).values()
        return backend.get("security_policy")

    assert policies() == set() and policies(cloud_armor={"enabled": True}) == set()
    assert policies(**DOMAIN) == {"collect.example.com"}
    assert policies(**DOMAIN, cloud_armor={"enabled": False}) == set()
    # The policy is keyed like the load balancer, so the backend service for the domain finds it.
    assert attached() == "<google_compute_security_policy.collector[each_key].id>"
    assert attached(cloud_armor={"enabled": False}) is None


def rules(console: Path, infra: dict[str, list[dict[str, Any]]], **variables: Any) -> list[dict[str, Any]]:
    """The policy's rules as Terraform plans them, each with its match expression and rate limit flattened."""
    [policy] = planned(console, infra, "google_compute_security_policy", **DOMAIN, **variables).values()
    flat = []
    for rule in policy["rule"]:
        [match] = rule["match"]
        expressions = [e["expression"] for e in match.get("expr", [])]
        assert len(expressions) <= 1
        if not expressions:  # every request: the versioned "all source addresses" match
            assert (match["versioned_expr"], match["config"]) == ("SRC_IPS_V1", [{"src_ip_ranges": ["*"]}])
        limits = rule.get("rate_limit_options", [])
        flat.append(
            {
                **{k: rule[k] for k in ("priority", "description", "action", "preview")},
                "expression": expressions[0] if expressions else None,
                "limits": limits[0] if limits else None,
            }
        )
    return flat


def test_the_rate_limit_is_per_ip_answers_429_and_takes_its_thresholds_from_the_variable(console, infra):
    planned_rules = rules(console, infra)
    priorities = [rule["priority"] for rule in planned_rules]
    assert priorities == sorted(priorities) and len(set(priorities)) == len(priorities)
    # Cloud Armor stops at the first rule that matches, and a rate limit's conform action "allow" is a match:
    # the refusals come before it, the default allow last.
    *refusals, limit, default = planned_rules
    assert all(r["action"].startswith("deny(") and r["expression"] and r["limits"] is None for r in refusals)
    assert (default["priority"], default["action"], default["expression"]) == (2147483647, "allow", None)
    assert limit["expression"] is None  # every request counts
    assert limit["action"] == "throttle"
    assert limit["limits"] == {
        "enforce_on_key": "IP",
        "exceed_action": "deny(429)",
        "conform_action": "allow",
        "ban_duration_sec": None,
        "rate_limit_threshold": [{"count": 300, "interval_sec": 60}],
    }
    assert {r["preview"] for r in planned_rules} == {False, None}  # the default rule has no preview

    chosen = {
        "requests_per_ip": 120,
        "interval_sec": 10,
        "action": "rate_based_ban",
        "ban_duration_sec": 900,
        "preview": True,
    }
    *previewed, limit, default = rules(console, infra, cloud_armor=chosen)
    assert limit["action"] == "rate_based_ban" and limit["limits"]["ban_duration_sec"] == 900
    assert limit["limits"]["rate_limit_threshold"] == [{"count": 120, "interval_sec": 10}]
    assert all(r["preview"] is True for r in [*previewed, limit]) and default["preview"] is None


def expression_regex(expression_: str) -> re.Pattern[str]:
    [pattern] = re.findall(r"\.matches\('([^']*)'\)", expression_)
    return re.compile(pattern)


def test_the_refusals_let_through_exactly_what_the_collector_serves(console, infra):
    """Methods: the routes' own, plus preflights. Bodies: a declared Content-Length above MAX_BODY_BYTES,
    checked against numbers on both sides of the limit (the regex is the rule's, run by Python's re, which
    agrees with RE2 on this syntax)."""
    from loyjoy_collector.routes import DATA_ROUTE, ROUTES

    methods_rule, body_rule, *_ = rules(console, infra)
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
    for value in (
        {"requests_per_ip": 1, "interval_sec": 10},
        {"requests_per_ip": 1_000_000, "interval_sec": 3600},
        {"requests_per_ip": 10_000, "action": "rate_based_ban", "ban_duration_sec": 86400},
    ):
        assert evaluate(console, "var.cloud_armor", cloud_armor=value).items() >= value.items()


def test_the_looker_studio_link_opens_the_chat_impact_tables_with_their_date_dimension(infra, console):
    """With GA4's export the report opens chat_impact and chat_conversions first, and loyjoy_kpis either way, each
    as a day-partitioned table whose partition column is the date range (isPartitioned); every table it names is
    one the refresh builds."""
    from urllib.parse import parse_qsl, urlsplit

    from loyjoy_collector.ops.refresh import built

    for ga4 in (False, True):
        url = output(console, infra, "looker_studio_url", **({"ga4_export_dataset": "analytics_123"} if ga4 else {}))
        params = dict(parse_qsl(urlsplit(url).query))
        sources = {key.split(".")[1] for key in params if key.startswith("ds.ds")}
        opened = [params[f"ds.{s}.tableId"] for s in sorted(sources, key=lambda s: int(s[2:]))]
        assert all(params[f"ds.{s}.isPartitioned"] == "true" for s in sources)
        assert "loyjoy_kpis" in opened and set(opened) <= set(built(ga4=ga4))
        assert (opened[:2] == ["chat_impact", "chat_conversions"]) is ga4
        assert ("chat_impact" in opened) is ga4
