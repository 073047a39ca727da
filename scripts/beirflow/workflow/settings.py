"""One strict decoder for every family's settings: a config entry (or the rule params made from it)
becomes a typed settings object, and a key the settings do not know is an error, never dropped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any, TypeVar

from beirflow.workflow.errors import BeirflowError

# Keys of a system's entry that change how it runs, where, or how the report shows it, never
# what it returns: they are not rule params, so raising a batch size or a time limit after a
# failure, or limiting a model to fewer datasets, reruns nothing that finished.
OPERATIONAL_KEYS = ("batch_size", "resources", "enabled", "datasets", "report")

Settings = TypeVar("Settings")


class SettingsError(BeirflowError, ValueError):
    """A settings key that the family does not know."""


def decode(cls: type[Settings], entry: Mapping[str, Any], key: str = "", operational: Sequence[str] = ()) -> Settings:
    """``cls`` from ``entry``'s result keys; operational keys (the common ones and the family's ``operational``)
    are skipped, unknown ones raise naming ``key``."""
    known = {field.name for field in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(entry) - known - set(OPERATIONAL_KEYS) - set(operational))
    if unknown:
        where = f"config key {key}.{unknown[0]}" if key else f"'{unknown[0]}'"
        raise SettingsError(f"{where}: not a key of {cls.__name__} (known: {', '.join(sorted(known))})")
    return cls(**{name: value for name, value in entry.items() if name in known})
