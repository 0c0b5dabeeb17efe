"""Write infra/README.md from the module itself: its Terraform and provider requirements, every variable (type,
default, description, the checks its validations make) and every output. `bash scripts/infra-docs` writes the
file; `--check` only says whether the committed one is current (tests/test_docs.py runs the same comparison).

The HCL is read with python-hcl2 (a dev dependency), not with text patterns: a variable without a description
or with a heredoc one comes out the same way Terraform reads it.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import textwrap
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import hcl2

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
TARGET = INFRA / "README.md"
COMMAND = "bash scripts/infra-docs"

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}
_HEREDOC = re.compile(r"<<(-?)(\w+)\n(.*?)\n[ \t]*\2", re.S)


@dataclass(frozen=True)
class Variable:
    name: str
    type: str
    default: str | None  # rendered as HCL; None: required
    description: str
    checks: tuple[str, ...]


@dataclass(frozen=True)
class Output:
    name: str
    description: str


@cache
def _loads(text: str) -> dict[str, Any]:
    return hcl2.loads(text)


def parse(directory: Path) -> dict[str, list[Any]]:
    """Every top-level block of the directory's .tf files, in file-name order."""
    merged: dict[str, list[Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        for key, items in _loads(path.read_text()).items():
            if not key.startswith("__"):
                merged.setdefault(key, []).extend(items)
    return merged


def named(document: dict[str, list[Any]], kind: str) -> dict[str, dict[str, Any]]:
    """The `kind "name" { ... }` blocks by name (variable, output, module)."""
    return {name.strip('"'): body for item in document.get(kind, []) for name, body in item.items()}


def string(value: Any) -> str:
    """The text of an HCL string as hcl2 hands it over (quoted, escapes kept, or a heredoc)."""
    if not isinstance(value, str):
        return "" if value is None else str(value)
    text = value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    heredoc = _HEREDOC.fullmatch(text)
    if heredoc:
        body = heredoc.group(3)
        return textwrap.dedent(body) if heredoc.group(1) else body
    text = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text)
    return text.replace("$${", "${").replace("%%{", "%{")


def expression(value: Any) -> str:
    """A value as hcl2 hands it over, written back as HCL (`${x}` alone is the expression x)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return value[2:-1] if value.startswith("${") and value.endswith("}") else value
    if isinstance(value, list):
        return "[" + ", ".join(expression(v) for v in value) + "]"
    if isinstance(value, dict):
        items = [f"{k} = {expression(v)}" for k, v in value.items() if not k.startswith("__")]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    raise TypeError(f"no HCL for {value!r}")


def variables(directory: Path = INFRA) -> list[Variable]:
    found = []
    for name, body in named(parse(directory), "variable").items():
        checks = tuple(string(rule.get("error_message")) for rule in body.get("validation", []))
        found.append(
            Variable(
                name=name,
                type=expression(body.get("type", "any")),
                default=expression(body["default"]) if "default" in body else None,
                description=string(body.get("description")),
                checks=checks,
            )
        )
    return found


def outputs(directory: Path = INFRA) -> list[Output]:
    return [Output(name, string(body.get("description"))) for name, body in named(parse(directory), "output").items()]


def examples(directory: Path = INFRA) -> dict[str, Path]:
    return {path.parent.name: path.parent for path in sorted((directory / "examples").glob("*/main.tf"))}


def requirements(directory: Path = INFRA) -> list[tuple[str, str]]:
    rows = []
    for block in parse(directory).get("terraform", []):
        if "required_version" in block:
            rows.append(("terraform", string(block["required_version"])))
        for providers in block.get("required_providers", []):
            for name, spec in providers.items():
                if not name.startswith("__"):
                    rows.append((f"{string(spec['source'])}", string(spec.get("version", "any"))))
    return rows


def cell(text: str) -> str:
    """One table cell: one line, pipes escaped, and outside code spans `<` and `>` as entities (GitHub would
    take `analytics_<property id>` for an HTML tag and hide it)."""
    parts = " ".join(text.split()).replace("|", "\\|").split("`")
    return "`".join(p if i % 2 else p.replace("<", "&lt;").replace(">", "&gt;") for i, p in enumerate(parts))


def code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def render(directory: Path = INFRA) -> str:
    found = variables(directory)
    required = [v for v in found if v.default is None]
    tfvars = hcl2.loads((directory / "terraform.tfvars.example").read_text())
    width = max(len(v.name) for v in required)
    usage = "\n".join(f"  {v.name.ljust(width)} = {expression(tfvars[v.name])}" for v in required)
    lines = [
        f"<!-- Generated by `{COMMAND}` from infra/*.tf: edit the descriptions there and run it again."
        " tests/test_docs.py fails while this file differs from what it writes. -->",
        "",
        "# The Terraform module",
        "",
        "Everything the collector needs in one GCP project: the function, its service accounts, the e-mail hash key",
        "in Secret Manager, the dataset with its tables, analyst tables and views, the scheduled refresh, log-based",
        "metrics and alerts, and with `custom_domain` an HTTPS load balancer with Cloud Armor. The examples call it:",
        "",
    ]
    lines += [f"- [`examples/{name}`](examples/{name}/main.tf)" for name in examples(directory)]
    lines += [
        "",
        "Each example passes every output below through, so `terraform output -raw check_command` (and the others)",
        "work in the example's directory.",
        "",
        "```hcl",
        'module "loyjoy_collector" {',
        '  source = "../.." # this directory',
        "",
        usage,
        "}",
        "```",
        "",
        "## Requirements",
        "",
        "| | version |",
        "|---|---|",
    ]
    lines += [f"| {code(name)} | {code(version)} |" for name, version in requirements(directory)]
    lines += [
        "",
        "## Inputs",
        "",
        "Required first, then in the order of the files. *Checked*: what the variable's validation refuses",
        "at `plan`.",
        "",
        "| name | type | default | description |",
        "|---|---|---|---|",
    ]
    for v in required + [v for v in found if v.default is not None]:
        text = v.description + "".join(f" *Checked:* {check}" for check in v.checks)
        default = "required" if v.default is None else code(v.default)
        lines.append(f"| {code(v.name)} | {code(cell(v.type))} | {cell(default)} | {cell(text)} |")
    lines += ["", "## Outputs", "", "| name | description |", "|---|---|"]
    lines += [f"| {code(o.name)} | {cell(o.description)} |" for o in outputs(directory)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="infra-docs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare: exit 1 if infra/README.md is stale")
    args = parser.parse_args(argv)
    wanted = render()
    current = TARGET.read_text() if TARGET.exists() else ""
    if args.check:
        if current == wanted:
            return 0
        diff = difflib.unified_diff(current.splitlines(), wanted.splitlines(), "infra/README.md", "generated")
        print("\n".join(line.rstrip("\n") for line in diff))
        print(f"infra/README.md is out of date: run `{COMMAND}`", file=sys.stderr)
        return 1
    if current != wanted:
        TARGET.write_text(wanted)
        print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
