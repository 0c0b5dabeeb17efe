"""The google provider's published schema (6.50.0), read from the jsii assembly that the PyPI package
cdktf-cdktf-provider-google==16.12.1 ships, so that infra/ can be checked without downloading the provider.

The assembly describes each resource as a class whose docs link to its registry page, and its arguments as a
`<Class>Config` interface; nested blocks are further interfaces. Each property's docs link names the exact
Terraform argument after a '#'.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".local" / "cache"
WHEEL = CACHE / "cdktf_cdktf_provider_google-16.12.1-py3-none-any.whl"
MEMBER = "cdktf_cdktf_provider_google/_jsii/provider-google@16.12.1.jsii.tgz"
COMPACT = CACHE / "google-provider-6.50.0.schema.json"
PROVIDER_VERSION = "6.50.0"

_LINK = re.compile(r"registry\.terraform\.io/providers/hashicorp/google/([\d.]+)/docs/(resources|data-sources)/(\w+)")
_ARG = re.compile(r"#(\w+) ")


@dataclass
class Block:
    arguments: dict[str, bool] = field(default_factory=dict)  # name -> required
    blocks: dict[str, tuple[bool, Block]] = field(default_factory=dict)  # name -> (required, block)

    def to_json(self) -> dict[str, Any]:
        return {
            "arguments": self.arguments,
            "blocks": {name: [required, block.to_json()] for name, (required, block) in self.blocks.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Block:
        return cls(
            dict(data["arguments"]),
            {name: (required, cls.from_json(block)) for name, (required, block) in data["blocks"].items()},
        )


@dataclass
class Resource:
    block: Block
    attributes: set[str]  # what expressions may read (arguments and computed attributes)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _nested_interface(type_ref: Any, types: dict[str, Any]) -> str | None:
    """The provider interface a property's type refers to (directly, in a list, or in a union)."""
    if isinstance(type_ref, dict):
        fqn = type_ref.get("fqn")
        if isinstance(fqn, str):
            kind = types.get(fqn, {}).get("kind")
            return fqn if fqn.startswith("@cdktf/provider-google.") and kind == "interface" else None
        for value in type_ref.values():
            found = _nested_interface(value, types)
            if found:
                return found
    if isinstance(type_ref, list):
        for value in type_ref:
            found = _nested_interface(value, types)
            if found:
                return found
    return None


def _block(fqn: str, types: dict[str, Any], depth: int = 0) -> Block:
    block = Block()
    for prop in types[fqn].get("properties", []):
        docs = prop.get("docs", {})
        match = _ARG.search(docs.get("remarks", "") + " ")
        name = match.group(1) if match else _snake(prop["name"])
        required = not prop.get("optional", False)
        nested = _nested_interface(prop["type"], types) if depth < 12 else None
        if nested:
            block.blocks[name] = (required, _block(nested, types, depth + 1))
        else:
            block.arguments[name] = required
    return block


def _extract() -> dict[str, Any]:
    with zipfile.ZipFile(WHEEL) as wheel:
        archive = wheel.read(MEMBER)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = tar.extractfile("package/.jsii")
        assert member is not None
        types = json.load(member)["types"]
    schema: dict[str, Any] = {}
    for fqn, spec in types.items():
        if spec.get("kind") != "class":
            continue
        link = _LINK.search(spec.get("docs", {}).get("summary", ""))
        if not link or f"{fqn}Config" not in types:
            continue
        version, kind, name = link.groups()
        assert version == PROVIDER_VERSION, version
        block = _block(f"{fqn}Config", types)
        getters = {_snake(p["name"]) for p in spec.get("properties", []) if not p["name"].endswith("Input")}
        key = f"{'resource' if kind == 'resources' else 'data'}.google_{name}"
        schema[key] = {"block": block.to_json(), "attributes": sorted(getters | set(block.arguments))}
    return schema


def load() -> dict[str, Resource]:
    if not COMPACT.exists():
        if not WHEEL.exists():
            raise FileNotFoundError(f"{WHEEL} is missing: run scripts/setup (it downloads the provider schema)")
        COMPACT.write_text(json.dumps(_extract()))
    raw = json.loads(COMPACT.read_text())
    return {key: Resource(Block.from_json(v["block"]), set(v["attributes"])) for key, v in raw.items()}
