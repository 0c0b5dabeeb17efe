"""The docs name nothing that does not exist: every `terraform output` they tell a reader to run is an output of
the module and of every example (and a string where they read it with -raw), every `loyjoy-collector` command
and option is one the CLI's parser has, every shell line they show parses, every script, path and link
exists; infra/README.md is exactly what `bash scripts/infra-docs` writes from the .tf files.

Pure: no local stack; `terraform console` evaluates outputs offline (tests/terraform_offline.py).
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import hcl2
import pytest

from loyjoy_collector.ops import cli
from tools import infra_docs

from . import terraform_offline

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
DOCS = sorted({ROOT / "README.md", INFRA / "README.md", *ROOT.glob("docs/**/*.md")})
TERRAFORM = sorted(INFRA.rglob("*.tf"))  # comments and descriptions are docs too
SHELL = {"", "bash", "sh", "shell", "console"}
FENCE = re.compile(r"^(`{3,}|~{3,})([\w-]*)[^\n]*\n(.*?)^\1[ \t]*$", re.M | re.S)
SPAN = re.compile(r"(`+)(.+?)\1", re.S)
COMMAND = re.compile(r"(?<![\w.-])loyjoy-collector\s+([a-z][\w-]*)([^\n|;&#)]*)")
OUTPUT_NAMED = [
    re.compile(r"\bterraform output\s+(?:-\w+\s+)*([a-z_][a-z0-9_]*)"),
    re.compile(r"\boutputs? `([a-z_][a-z0-9_]*)`"),
    re.compile(r"\boutput ([a-z][a-z0-9]*_[a-z0-9_]+)"),
]
RAW = re.compile(r"\bterraform output\s+(?:-\w+\s+)*-raw\s+(?:-\w+\s+)*([a-z_][a-z0-9_]*)")
PATH = re.compile(r"(?<![\w./$~-])((?:scripts|bench|tests|functions|infra|snippet|gtm|docs|tools|\.ci)/[\w./-]*)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def texts() -> dict[str, str]:
    return {relative(p): p.read_text() for p in [*DOCS, *TERRAFORM]}


def code(markdown: str) -> tuple[list[str], list[str]]:
    """(shell lines of fenced blocks, with continuations joined; every inline code span) of a markdown text."""
    lines: list[str] = []
    for _, language, body in FENCE.findall(markdown):
        if language.lower() in SHELL:
            lines += [line for line in re.sub(r"\\\n\s*", " ", body).splitlines() if line.strip()]
    spans = [" ".join(span.split()) for _, span in SPAN.findall(FENCE.sub("", markdown))]
    return lines, spans


def snippets() -> dict[str, list[str]]:
    """Where commands appear: code in the markdown docs, and the whole text of the .tf files."""
    found = {}
    for path in DOCS:
        lines, spans = code(path.read_text())
        found[relative(path)] = lines + spans
    for path in TERRAFORM:
        found[relative(path)] = path.read_text().splitlines()
    return found


def outputs_named() -> dict[str, set[str]]:
    """Output name -> the files that tell a reader to read it."""
    named: dict[str, set[str]] = {}
    for where, text in texts().items():
        for pattern in OUTPUT_NAMED:
            for name in pattern.findall(text):
                named.setdefault(name, set()).add(where)
    return named


def root_outputs() -> dict[str, dict]:
    return infra_docs.named(infra_docs.parse(INFRA), "output")


@pytest.fixture(scope="module")
def console(tmp_path_factory) -> Path:
    return terraform_offline.build(tmp_path_factory.mktemp("docs-console"))


# ---------------------------------------------------------------------------------------------- outputs


def test_every_output_the_docs_name_exists_in_the_module_and_every_example():
    named = outputs_named()
    assert {"collector_url", "check_command"} <= set(named) and len(named) >= 4  # the patterns still see
    outputs = set(root_outputs())
    missing = {name: sorted(where) for name, where in named.items() if name not in outputs}
    assert missing == {}, "named in the docs, not an output of infra/outputs.tf"
    for example, directory in infra_docs.examples().items():
        exported = set(infra_docs.named(infra_docs.parse(directory), "output"))
        absent = {name: sorted(where) for name, where in named.items() if name not in exported}
        assert absent == {}, f"infra/examples/{example} does not export what the docs tell a reader to read"


def test_every_example_passes_every_output_of_the_module_through():
    outputs = list(root_outputs())
    for example, directory in infra_docs.examples().items():
        document = infra_docs.parse(directory)
        [(module, _)] = infra_docs.named(document, "module").items()
        exported = {name: body["value"] for name, body in infra_docs.named(document, "output").items()}
        assert list(exported) == outputs, f"infra/examples/{example}: in the order of infra/outputs.tf"
        wrong = {name: value for name, value in exported.items() if value != f"${{module.{module}.{name}}}"}
        assert wrong == {}, f"infra/examples/{example}: pass each output through under its own name"


def test_what_the_docs_read_with_raw_is_a_string(console):
    """`terraform output -raw` refuses anything but a string (dns_record, an object, is read without it)."""
    raw = {name for text in texts().values() for name in RAW.findall(text)}
    assert {"collector_url", "check_command"} <= raw
    outputs = root_outputs()
    values = "{" + ", ".join(f"{name} = {infra_docs.expression(outputs[name]['value'])}" for name in sorted(raw)) + "}"
    for variables in ({}, {"custom_domain": "collect.example.com"}):
        evaluated = terraform_offline.evaluate(console, values, **variables)
        assert {name: type(v).__name__ for name, v in evaluated.items() if not isinstance(v, str)} == {}, variables


# --------------------------------------------------------------------------------------------- commands


def cli_help(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        cli.main([*argv, "--help"])
    assert exited.value.code == 0
    return out.getvalue()


@pytest.fixture(scope="module")
def subcommands() -> dict[str, set[str]]:
    """Each subcommand of the CLI's parser, with the options its --help lists."""
    [choices] = set(re.findall(r"\{([\w,-]+)\}", cli_help()))  # in the usage line and the list below it
    return {sub: set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", cli_help(sub))) for sub in choices.split(",")}


def commands() -> list[tuple[str, str, list[str]]]:
    """(where, subcommand, options) of every `loyjoy-collector <subcommand> ...` the docs show."""
    found = []
    for where, pieces in snippets().items():
        for piece in pieces:
            for sub, rest in COMMAND.findall(piece):
                options = re.findall(r"(?<![\w-])--[A-Za-z][\w-]*", rest)  # [--days N], --to=URL, ... --cloud"
                found.append((where, sub, options))
    return found


def test_every_command_the_docs_show_exists_with_its_options(subcommands):
    found = commands()
    assert {sub for _, sub, _ in found} >= {"dev", "rows", "check", "erase", "refresh", "replay", "bootstrap"}
    unknown = [(where, sub) for where, sub, _ in found if sub not in subcommands]
    assert unknown == [], f"not a subcommand of loyjoy-collector (it has {sorted(subcommands)})"
    options = [(where, sub, o) for where, sub, opts in found for o in opts if o not in subcommands[sub]]
    assert options == [], "not an option of that subcommand (see `loyjoy-collector <subcommand> --help`)"


def test_every_option_the_docs_name_alone_is_an_option_of_the_cli(subcommands):
    """`--no-read` skips ..., `--resume` finishes ...: an option named without its command is one of some
    subcommand's."""
    every = set().union(*subcommands.values())
    alone = {
        (relative(path), span.split()[0])
        for path in DOCS
        for span in code(path.read_text())[1]
        if re.fullmatch(r"--[A-Za-z][\w-]*(?: [A-Z_]+)?", span)
    }
    assert {option for _, option in alone} >= {"--no-read", "--resume"}
    assert [(where, option) for where, option in sorted(alone) if option not in every] == []


def parses(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> str:
    """The subcommand the CLI runs for argv, parsed by its own parser; every command is replaced by a stub."""
    ran = []
    for name in dir(cli):
        if name.startswith("cmd_"):
            monkeypatch.setattr(cli, name, lambda args, name=name: ran.append(name) or 0)
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        try:
            assert cli.main(argv) == 0
        except SystemExit as exited:
            raise AssertionError(f"{shlex.join(argv)}: {errors.getvalue().strip()}") from exited
    [name] = ran
    return name.removeprefix("cmd_")


def argv_of(line: str) -> list[str] | None:
    """The arguments after `loyjoy-collector` in a shell line (environment assignments before it), or None."""
    tokens = shlex.split(line, comments=True)
    starts = [i for i, token in enumerate(tokens) if token.endswith("loyjoy-collector")]
    if not starts:
        return None
    rest = tokens[starts[0] + 1 :]
    ends = [i for i, token in enumerate(rest) if token in {"|", "||", "&&", ";"}]
    return rest[: ends[0]] if ends else rest


def test_every_shell_line_the_docs_show_parses(monkeypatch):
    """A reader copies these: each parses with the CLI's own parser (required options, types, exclusions)."""
    seen = 0
    for path in DOCS:
        for line in code(path.read_text())[0]:
            argv = argv_of(line)
            if argv is not None:
                assert parses(argv, monkeypatch) == argv[0], line
                seen += 1
    assert seen >= 5


def test_the_commands_the_outputs_print_parse(console, monkeypatch):
    """check_command and erase_command, as Terraform renders them, are command lines the CLI accepts."""
    outputs = root_outputs()
    printed = {name: body["value"] for name, body in outputs.items() if "loyjoy-collector " in body["value"]}
    assert {"check_command", "erase_command"} <= set(printed)
    for name, value in printed.items():
        line = terraform_offline.evaluate(console, infra_docs.expression(value))
        argv = argv_of(line)
        assert argv is not None and parses(argv, monkeypatch) == name.removesuffix("_command"), line
        assert re.match(r"^BQ_PROJECT=my-project-1 BQ_DATASET=loyjoy ", line), line


# ---------------------------------------------------------------------------------------- paths, links


def test_every_script_path_and_link_the_docs_name_exists():
    missing, seen = [], set()
    for path in DOCS:
        text = path.read_text()
        for name in PATH.findall(text):
            name = name.rstrip(".,:;")
            seen.add(name)
            if not (ROOT / name).exists():
                missing.append((relative(path), name))
        for target in LINK.findall(SPAN.sub("", FENCE.sub("", text))):
            if re.match(r"^(\w+:|#)", target):
                continue
            if not (path.parent / target.split("#")[0]).exists():
                missing.append((relative(path), target))
    assert {"scripts/dev", "scripts/test"} <= seen
    assert missing == []


def anchors(path: Path) -> set[str]:
    """The anchors GitHub makes of a Markdown file's headings: lower case, punctuation gone, spaces to hyphens."""
    headings = re.findall(r"^#{1,6} +(.+?) *$", FENCE.sub("", path.read_text()), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_every_link_to_a_section_finds_its_heading():
    broken = []
    for path in DOCS:
        for target in LINK.findall(SPAN.sub("", FENCE.sub("", path.read_text()))):
            if "#" not in target or re.match(r"^\w+:", target):
                continue
            file, anchor = target.split("#", 1)
            linked = (path.parent / file) if file else path
            if linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append((relative(path), target))
    assert broken == []


def test_the_scripts_the_docs_name_are_the_scripts_there_are():
    """And the other way round: a script nobody documents is either new and undocumented, or dead."""
    named = {Path(name).name for text in texts().values() for name in re.findall(r"\bscripts/([\w-]+)", text)}
    present = {path.name for path in (ROOT / "scripts").iterdir() if path.is_file()}
    assert named - present == set()
    assert present - named == set(), "scripts no doc mentions"


# ------------------------------------------------------------------------------------------ infra/README


def test_the_infra_readme_is_what_the_generator_writes():
    current = (INFRA / "README.md").read_text() if (INFRA / "README.md").exists() else ""
    assert current == infra_docs.render(), f"infra/README.md is out of date: run `{infra_docs.COMMAND}`"


def test_the_infra_readme_lists_every_variable_and_output():
    """The generator itself: nothing it reads is left out, and a heredoc description comes out as text."""
    document = infra_docs.parse(INFRA)
    rendered = infra_docs.render()
    for kind in ("variable", "output"):
        for name in infra_docs.named(document, kind):
            assert re.search(rf"^\| `{name}` \|", rendered, re.M), name
    [armor] = [v for v in infra_docs.variables() if v.name == "cloud_armor"]
    assert armor.description.startswith("With custom_domain:") and "EOT" not in armor.description
    assert [v.name for v in infra_docs.variables() if v.default is None] == ["project_id", "allowed_origins"]
    tfvars = hcl2.loads((INFRA / "terraform.tfvars.example").read_text())
    assert f"project_id      = {tfvars['project_id']}" in rendered
