"""The config against its schema (defaults filled in, errors naming the key), and the models it names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from beirflow.workflow.errors import ConfigError
from beirflow.workflow.records import MODEL_KEYS
from beirflow.workflow.systems import Sections

SCHEMA = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"


def load_schema(path: Path = SCHEMA) -> dict[str, Any]:
    import yaml

    return dict(yaml.safe_load(path.read_text(encoding="utf-8")))


def validate_config(config: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` checked against the schema, with its defaults filled in (as Snakemake's
    ``validate`` does); an error names the config key."""
    import copy

    import jsonschema
    from jsonschema import Draft202012Validator, validators

    validate_properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator: Any, properties: dict[str, Any], instance: Any, subschema: dict[str, Any]) -> Any:
        if isinstance(instance, dict):
            for name, property_schema in properties.items():
                if "default" in property_schema:
                    instance.setdefault(name, copy.deepcopy(property_schema["default"]))
        yield from validate_properties(validator, properties, instance, subschema)

    validator = validators.extend(Draft202012Validator, {"properties": set_defaults})(schema)
    checked = copy.deepcopy(config)
    try:
        validator.validate(checked)
    except jsonschema.ValidationError as error:
        key = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        raise ConfigError(f"{key}: {error.message}") from None
    return checked


def unpinned_models(families: Sections) -> list[str]:
    """``rerank.x.revision: main`` and the like: hub models run at a branch or tag, not a commit."""
    from beirflow.models.loading import is_hub_name

    found = []
    for family, systems in families.items():
        for name, entry in systems.items():
            for model_key, revision_key in (("model", "revision"), ("adapter", "adapter_revision")):
                model, revision = entry.get(model_key), entry.get(revision_key)
                if model and revision and is_hub_name(model) and not _COMMIT.match(revision):
                    found.append(f"{family}.{name}.{revision_key}: {revision}")
    return found


_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def check_model_locations(families: Sections, import_packages: bool = True) -> None:
    """Every model (and adapter) of the given families that is a folder or a package is where the config says,
    and names no revision: only a Hugging Face model has one (a folder or a package is what it is on disk)."""
    from beirflow.models.loading import is_hub_name, location_problem

    for family, systems in families.items():
        for name, entry in systems.items():
            for model_key, revision_key, marker in MODEL_KEYS:
                model = entry.get(model_key)
                problem = model and location_problem(model, marker, import_packages)
                if problem:
                    raise ConfigError(f"{family}.{name}.{model_key}: model '{model}': {problem}")
                if model and entry.get(revision_key) and not is_hub_name(model):
                    raise ConfigError(
                        f"{family}.{name}.{revision_key}: model '{model}' is a "
                        f"{'package' if model.startswith('package:') else 'folder'}, which has no revision: "
                        "only a Hugging Face model is fetched at one; remove the key"
                    )
