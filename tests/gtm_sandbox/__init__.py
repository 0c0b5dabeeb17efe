"""An offline harness for GTM web tag templates (gtm/template.tpl).

No GTM is reachable from CI and no open runner of templates exists, so the template is checked and run against
what Google documents: the file's sections, the sandboxed language (checker.js), the sandboxed APIs with their
permissions enforced at call time (sandbox.js), and the template test API for ``___TESTS___`` (runner.js).
The JavaScript half runs in Node; sandbox.js also runs in a real browser page for the end-to-end test.

What is enforced, and where Google says so (developers.google.com/tag-platform/tag-manager/templates/…):
- the language (checker.js; …/sandboxed-javascript, …/standard-library): ES5.1 plus arrows and const/let; no
  `new`, no `this`; no regular expression literals (no RegExp type); no global environment (free names: `require`
  and `data` only, and the code runs in a vm context whose built-in globals are deleted); the standard library's
  methods only; `require` of an API's name as a literal;
- permissions (sandbox.js; …/permissions, …/api): each required API's permission declared; at call time
  inject_script URL patterns, access_globals keys with read/write/execute, access_consent types, logging
  environments (debug: preview only), access_template_storage; queryPermission answers the same checks;
- the test API (runner.js; …/tests): setup then scenario in one scope, runCode, mock/mockObject (not
  permission-checked, as documented), assertApi and assertThat, fail;
- the editor's field validators (validate()), which GTM's unit tests skip.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TEMPLATE = ROOT / "gtm" / "template.tpl"
RUNNER = HERE / "runner.js"
SANDBOX_JS = HERE / "sandbox.js"
NODE = shutil.which("node") or "node"

SECTIONS = (
    "___TERMS_OF_SERVICE___",
    "___INFO___",
    "___TEMPLATE_PARAMETERS___",
    "___SANDBOXED_JS_FOR_WEB_TEMPLATE___",
    "___WEB_PERMISSIONS___",
    "___TESTS___",
    "___NOTES___",
)
REQUIRED = SECTIONS[1:6]
FIELD_TYPES = {"TEXT", "SELECT", "RADIO", "CHECKBOX", "GROUP", "LABEL", "SIMPLE_TABLE", "PARAM_TABLE"}
VALIDATORS = {
    "NON_EMPTY",
    "REGEX",
    "POSITIVE_NUMBER",
    "NON_NEGATIVE_NUMBER",
    "NUMBER",
    "STRING_LENGTH",
    "TABLE_ROW_COUNT",
    "GA_TRACKING_ID",
}
_SECTION_LINE = re.compile(r"^(___[A-Z_]+___)\s*$", re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class Template:
    """The sections of one template.tpl, raw text each; the parsed views are properties."""

    sections: dict[str, str]

    @property
    def info(self) -> dict[str, Any]:
        return json.loads(self.sections["___INFO___"])

    @property
    def parameters(self) -> list[dict[str, Any]]:
        return json.loads(self.sections["___TEMPLATE_PARAMETERS___"])

    @property
    def code(self) -> str:
        return self.sections["___SANDBOXED_JS_FOR_WEB_TEMPLATE___"]

    @property
    def permissions(self) -> list[dict[str, Any]]:
        return json.loads(self.sections["___WEB_PERMISSIONS___"])

    @property
    def tests(self) -> dict[str, Any]:
        return yaml.safe_load(self.sections["___TESTS___"]) or {}

    def replace(self, **sections: str | Any) -> Template:
        """A variant, for the tests that prove the harness refuses what GTM would (sections by short name)."""
        names = {"code": "___SANDBOXED_JS_FOR_WEB_TEMPLATE___", "permissions": "___WEB_PERMISSIONS___"}
        out = dict(self.sections)
        for short, value in sections.items():
            out[names[short]] = value if isinstance(value, str) else json.dumps(value, indent=2)
        return Template(out)


def parse(text: str) -> Template:
    """Split a template.tpl into its sections; a section named twice or an unknown one is an error."""
    text = text.lstrip("\ufeff")
    marks = list(_SECTION_LINE.finditer(text))
    if not marks or text[: marks[0].start()].strip():
        raise ValueError("template.tpl must start with a ___SECTION___ line")
    sections: dict[str, str] = {}
    for index, mark in enumerate(marks):
        name = mark.group(1)
        if name not in SECTIONS:
            raise ValueError(f"unknown section {name}")
        if name in sections:
            raise ValueError(f"section {name} appears twice")
        end = marks[index + 1].start() if index + 1 < len(marks) else len(text)
        sections[name] = text[mark.end() : end].strip("\n")
    missing = [name for name in REQUIRED if name not in sections]
    if missing:
        raise ValueError(f"missing sections: {', '.join(missing)}")
    return Template(sections)


def load(path: Path = TEMPLATE) -> Template:
    return parse(path.read_text(encoding="utf-8"))


def node(request: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    """One request to runner.js: the sandbox's JavaScript half."""
    done = subprocess.run(
        [NODE, str(RUNNER)], input=json.dumps(request), capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"runner.js failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def fields(parameters: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every field by name, groups and radio sub-fields included: what `data` can hold."""
    out: dict[str, dict[str, Any]] = {}
    for field in parameters:
        if field.get("name"):
            out[field["name"]] = field
        out.update(fields(field.get("subParams", [])))
        for item in field.get("radioItems", []) + field.get("selectItems", []):
            out.update(fields(item.get("subParams", [])))
    return out


def structure_errors(template: Template) -> list[str]:
    """What GTM's import refuses or the Gallery's review asks for, beyond the code: the JSON sections' shapes."""
    errors: list[str] = []
    info = template.info
    for key in ("type", "id", "version", "securityGroups", "displayName", "brand", "description", "containerContexts"):
        if key not in info:
            errors.append(f"___INFO___ lacks {key}")
    if info.get("type") != "TAG":
        errors.append("___INFO___ type must be TAG")
    if info.get("id") != "cvt_temp_public_id":
        errors.append("___INFO___ id must be cvt_temp_public_id (the Gallery assigns the real one)")
    if info.get("containerContexts") != ["WEB"]:
        errors.append("___INFO___ containerContexts must be [WEB]")
    if len(info.get("description", "")) > 200:
        errors.append("___INFO___ description is over 200 characters")
    by_name = fields(template.parameters)
    for name, field in by_name.items():
        if field.get("type") not in FIELD_TYPES:
            errors.append(f"field {name}: unknown type {field.get('type')}")
        for validator in field.get("valueValidators", []):
            if validator.get("type") not in VALIDATORS:
                errors.append(f"field {name}: unknown validator {validator.get('type')}")
            if validator.get("type") == "REGEX":
                re.compile(validator["args"][0])
        for condition in field.get("enablingConditions", []):
            if condition.get("paramName") not in by_name:
                errors.append(f"field {name}: enabling condition on unknown field {condition.get('paramName')}")
        if "defaultValue" in field and field.get("type") == "TEXT" and validate_field(field, field["defaultValue"]):
            errors.append(f"field {name}: its default value fails its own validators")
    used = set(re.findall(r"\bdata\.([A-Za-z_$][\w$]*)", template.code)) - {"gtmOnSuccess", "gtmOnFailure"}
    errors += [f"the code reads data.{name}, which no field declares" for name in sorted(used - set(by_name))]
    for entry in template.permissions:
        instance = entry.get("instance", {})
        if not instance.get("key", {}).get("publicId") or instance.get("key", {}).get("versionId") != "1":
            errors.append(f"permission entry without publicId/versionId: {json.dumps(entry)[:80]}")
        if not isinstance(instance.get("param"), list):
            errors.append(f"permission {instance.get('key', {}).get('publicId')}: param must be a list")
    for scenario in template.tests.get("scenarios", []):
        if not scenario.get("name") or not isinstance(scenario.get("code"), str):
            errors.append(f"___TESTS___: a scenario needs a name and code: {scenario!r:.80}")
    return errors


def validate_field(field: dict[str, Any], value: Any) -> list[str]:
    """GTM's field validators as the editor applies them when a user saves a tag (unit tests skip these)."""
    problems = []
    text = "" if value is None else str(value)
    for validator in field.get("valueValidators", []):
        kind = validator["type"]
        if kind == "NON_EMPTY" and not text.strip():
            problems.append(f"{field['name']}: empty")
        elif kind == "REGEX" and text and not re.fullmatch(validator["args"][0], text):
            problems.append(f"{field['name']}: {validator.get('errorMessage', 'does not match')}")
        elif kind == "POSITIVE_NUMBER" and text:
            try:
                if float(text) <= 0:
                    problems.append(f"{field['name']}: not positive")
            except ValueError:
                problems.append(f"{field['name']}: not a number")
    return problems


def validate(template: Template, data: dict[str, Any]) -> list[str]:
    """A tag's settings as GTM would let them be saved: unknown keys and failed validators are problems."""
    by_name = fields(template.parameters)
    problems = [f"{key}: no such field" for key in data if key not in by_name]
    for name, field in by_name.items():
        enabled = all(data.get(c["paramName"]) == c["paramValue"] for c in field.get("enablingConditions", []))
        if enabled and field.get("type") != "GROUP":
            problems += validate_field(field, data.get(name, field.get("defaultValue")))
    return problems


def with_defaults(template: Template, data: dict[str, Any]) -> dict[str, Any]:
    """What GTM hands the code: every field's default value, then the user's settings."""
    out = {
        name: field["defaultValue"] for name, field in fields(template.parameters).items() if "defaultValue" in field
    }
    out.update(data)
    return out


def check(template: Template) -> list[str]:
    """Every static problem: the file's structure, the sandboxed language, the permissions the APIs need."""
    errors = structure_errors(template)
    tests = template.tests
    setup = tests.get("setup", "")
    scenarios = tests.get("scenarios", [])
    programs = [{"code": template.code, "permissions": template.permissions}]
    programs += [{"code": setup + "\n" + scenario["code"], "mode": "tests"} for scenario in scenarios]
    answers = node({"action": "check", "programs": programs})
    errors += [f"code line {e['line']}: {e['message']}" for e in answers[0]["errors"]]
    for scenario, answer in zip(scenarios, answers[1:], strict=True):
        errors += [f"test {scenario['name']!r} line {e['line']}: {e['message']}" for e in answer["errors"]]
    return errors


def fire(template: Template, steps: list[dict[str, Any]], scripts: dict[str, str], **options: Any) -> dict[str, Any]:
    """Fire the tag (and change consent) in Node's simulated page; see runner.js for the script kinds."""
    steps = [{"fire": with_defaults(template, s["fire"])} if "fire" in s else s for s in steps]
    return node(
        {
            "action": "fire",
            "code": template.code,
            "permissions": template.permissions,
            "steps": steps,
            "scripts": scripts,
            **options,
        }
    )


def run_tests(template: Template) -> list[dict[str, Any]]:
    """The template's own ___TESTS___ scenarios, each: {name, passed, error}."""
    tests = template.tests
    return node(
        {
            "action": "tests",
            "code": template.code,
            "permissions": template.permissions,
            "setup": tests.get("setup", ""),
            "scenarios": tests.get("scenarios", []),
        }
    )["results"]
