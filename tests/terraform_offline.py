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
    locals_ = [stand_ins(block) for path in sorted(INFRA.glob("*.tf")) for block in top_level_blocks(
        path.read_text(), "locals")]  # fmt: skip
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
        input=f"jsonencode({stand_ins(expression_)})\n", capture_output=True, text=True, cwd=module, timeout=60,
        env=dict(os.environ, TF_CLI_CONFIG_FILE="/dev/null", TF_IN_AUTOMATION="1"),
    )  # fmt: skip
    output = ANSI.sub("", result.stdout + result.stderr)
    if result.returncode != 0 or "Error:" in output:
        raise TerraformRefused(output)
    literal = [line for line in ANSI.sub("", result.stdout).splitlines() if line.startswith('"')][-1]
    return json.loads(json.loads(literal.replace("$${", "${").replace("%%{", "%{")))


def per_instance(body: dict[str, Any], value: Any) -> str:
    """An expression for `value` (an argument of a resource body) in every instance of the resource: a map
    from each.key to the value, or the value itself without for_each."""
    text = expression(value)
    if "for_each" not in body:
        return text
    text = re.sub(r"\beach\.(key|value)\b", r"each_\1", text)
    return f"{{for each_key, each_value in {expression(body['for_each'])} : each_key => {text}}}"
