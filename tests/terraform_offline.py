"""Terraform's own evaluation of infra/, without a provider.

`terraform console` needs no provider for a module of variables and locals: it checks every variable's
validation and evaluates expressions exactly as `plan` would. The scratch module holds variables.tf and every
top-level `locals` block of infra/, with each reference to a resource or data source replaced by a stand-in (an
attribute becomes the string "<google_x.name.attr>", a whole resource an empty map), and sits beside a link to
functions/ so that `${path.module}/../functions/...` reads the files the collector's code reads.

An output or a resource argument is evaluated through the same stand-ins: its expression, as python-hcl2
writes it back, with `each.key`/`each.value` bound by a `for` over the resource's `for_each`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tools.infra_docs import INFRA, ROOT, expression

REQUIRED_VARS = {"project_id": "my-project-1", "allowed_origins": ["https://www.example.com"]}
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# A reference to a resource, data source or ephemeral resource, with whatever indexes and attributes follow.
REFERENCE = re.compile(
    r"(?<![\w.\"])((?:data\.|ephemeral\.)?(?:google|archive|random)_\w+\.\w+)((?:\[[^\]\[]*\]|\.\w+)*)"
)


class TerraformRefused(Exception):
    pass


def top_level_blocks(text: str, kind: str) -> list[str]:
    """The `kind {` ... `}` blocks of a file that `terraform fmt` accepts (they open and close at column 0)."""
    return re.findall(rf"^{kind} \{{\n.*?^\}}\n", text, re.M | re.S)


def stand_ins(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name, rest = match.groups()
        if "." not in rest:  # the resource itself (all its instances): for_each and for read it as a map
            return "{}"
        return json.dumps(f"<{name}{rest}>".replace('"', "'"))

    return REFERENCE.sub(replace, text)


def build(directory: Path) -> Path:
    """The scratch module in directory/infra, beside directory/functions (a link to the real one)."""
    assert shutil.which("terraform"), "the terraform binary is needed"
    module = directory / "infra"
    module.mkdir()
    (directory / "functions").symlink_to(ROOT / "functions")
    for path in INFRA.iterdir():
        if path.is_file() and path.suffix != ".tf":
            (module / path.name).symlink_to(path)  # templates the module reads (snippet.html.tftpl)
    shutil.copy(INFRA / "variables.tf", module / "variables.tf")
    locals_ = [
        stand_ins(block)
        for path in sorted(INFRA.glob("*.tf"))
        for block in top_level_blocks(path.read_text(), "locals")
    ]
    assert locals_, "infra/ keeps its values in locals blocks"
    (module / "locals.tf").write_text("\n".join(locals_))
    return module


def evaluate(module: Path, expression_: str, var_file: Path | None = None, **variables: Any) -> Any:
    """The value of an expression in the scratch module with these variables, or TerraformRefused."""
    arguments = []
    if var_file is not None:
        arguments.append(f"-var-file={var_file}")
    else:
        generated = module / "test.tfvars.json"
        generated.write_text(json.dumps(REQUIRED_VARS | variables))
        arguments.append(f"-var-file={generated}")
    result = subprocess.run(
        [shutil.which("terraform") or "terraform", "console", *arguments],
        input=f"jsonencode({stand_ins(expression_)})\n",
        capture_output=True,
        text=True,
        cwd=module,
        timeout=60,
        env=dict(os.environ, TF_CLI_CONFIG_FILE="/dev/null", TF_IN_AUTOMATION="1"),
    )
    output = ANSI.sub("", result.stdout + result.stderr)
    if result.returncode != 0 or "Error:" in output:
        raise TerraformRefused(output)
    literal = [line for line in ANSI.sub("", result.stdout).splitlines() if line.startswith('"')][-1]
    return json.loads(json.loads(literal.replace("$${", "${").replace("%%{", "%{")))


META = {"depends_on", "lifecycle", "provider", "provisioner", "connection", "for_each", "count"}


def _is_block(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and v.get("__is_block__") for v in value)


def _bind(text: str, iterator: str) -> str:
    return re.sub(rf"\b{iterator}\.(key|value)\b", rf"{iterator}_\1", text)


def block_expression(body: dict[str, Any], top: bool = True) -> str:
    """A block as an object expression, as the plan would see it: arguments by value, nested blocks as lists of
    objects, dynamic blocks expanded by a `for` over their for_each (static and dynamic blocks of one name in
    file order). Meta-arguments are left out at the top (in a nested block `count` is an argument:
    rate_limit_threshold { count = ... })."""
    items: list[str] = []
    blocks: dict[str, list[str]] = {}
    for key, value in body.items():
        if key.startswith("__") or (top and key in META):
            continue
        if key == "dynamic":
            for item in value:
                for label, spec in item.items():
                    name = label.strip('"')
                    iterator = expression(spec["iterator"]) if "iterator" in spec else name
                    [content] = spec["content"]
                    inner = _bind(block_expression(content, top=False), iterator)
                    expanded = f"[for {iterator}_key, {iterator}_value in {expression(spec['for_each'])} : {inner}]"
                    blocks.setdefault(name, []).append(expanded)
        elif _is_block(value):
            blocks.setdefault(key, []).append("[" + ", ".join(block_expression(v, top=False) for v in value) + "]")
        else:
            items.append(f"{key} = {expression(value)}")
    for name, parts in blocks.items():
        items.append(f"{name} = {parts[0] if len(parts) == 1 else 'concat(' + ', '.join(parts) + ')'}")
    return "{" + ", ".join(items) + "}"


def instances_expression(body: dict[str, Any]) -> str:
    """Every instance of a resource: a map by each.key (for_each), a list (count), or the one object."""
    value = block_expression(body)
    if "for_each" in body:
        bound = re.sub(r"\beach\.(key|value)\b", r"each_\1", value)
        return f"{{for each_key, each_value in {expression(body['for_each'])} : each_key => {bound}}}"
    if "count" in body:
        bound = re.sub(r"\bcount\.index\b", "count_index", value)
        return f"[for count_index in range({expression(body['count'])}) : {bound}]"
    return value
