"""The systems of a config and how they depend on each other: names, the datasets each runs on, and the
graph of the systems each reads (a reranker's first stage, a fusion's runs), as the family records say."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from beirflow.data.registry import expand_beir_name
from beirflow.workflow.errors import ConfigError
from beirflow.workflow.family import Family

Sections = Mapping[str, Mapping[str, Mapping[str, Any]]]  # family -> system -> entry


def enabled_systems(section: dict[str, Any] | None) -> dict[str, Any]:
    """A family's systems without those marked ``enabled: false``."""
    return {name: entry for name, entry in (section or {}).items() if (entry or {}).get("enabled", True)}


def plan_systems(sections: Sections) -> dict[str, str]:
    """Map each system name to its family; names are unique across families."""
    owner: dict[str, str] = {}
    for family, systems in sections.items():
        for system in systems or {}:
            if system in owner:
                raise ConfigError(f"system '{system}' is defined under both '{owner[system]}' and '{family}'")
            owner[system] = family
    return owner


def upstream_of(families: Mapping[str, Family], sections: Sections) -> dict[str, list[tuple[str, str]]]:
    """system -> (config key, system) of each system it reads."""
    return {
        name: families[family].upstream(entry)
        for family, systems in sections.items()
        for name, entry in systems.items()
        if families[family].reads
    }


def check_upstream_exists(families: Mapping[str, Family], sections: Sections, systems: Mapping[str, str]) -> None:
    for family, entries in sections.items():
        for name, entry in entries.items():
            for key, upstream in families[family].upstream(entry):
                if upstream not in systems:
                    known = ", ".join(sorted(systems))
                    raise ConfigError(f"{family}.{name}.{key}: '{upstream}' is not a configured system (known: {known})")


def check_cycles(families: Mapping[str, Family], sections: Sections, systems: Mapping[str, str]) -> None:
    """No system depends on itself through the systems it reads."""
    inputs = upstream_of(families, sections)
    done: set[str] = set()

    def visit(name: str, path: list[tuple[str, str]]) -> None:
        names = [system for system, _ in path]
        if name in names:
            cycle = path[names.index(name) :]
            first, key = cycle[0]
            shown = " -> ".join([*(system for system, _ in cycle), name])
            raise ConfigError(f"{systems[first]}.{first}.{key}: the systems form a cycle ({shown})")
        if name in done:
            return
        for key, upstream in inputs.get(name, []):
            visit(upstream, [*path, (name, key)])
        done.add(name)

    for name in inputs:
        visit(name, [])


def stack_chain(system: str, families: Mapping[str, Family], sections: Sections, systems: Mapping[str, str]) -> list[str]:
    """``['bm25-flat', 'monot5-base', 'monot5-3b']`` for a cascade of systems each built on one other; a system
    built on none is alone."""
    chain = [system]
    while True:
        family = systems[chain[0]]
        below = families[family].stacked_on(sections[family][chain[0]])
        if below is None or below not in systems:
            return chain
        if below in chain:
            raise ConfigError(f"{family}.{system}: the systems form a cycle ({' -> '.join([*reversed(chain), below])})")
        chain.insert(0, below)


def system_datasets(families: Mapping[str, Family], sections: Sections, datasets: Iterable[str]) -> dict[str, list[str]]:
    """Each system's datasets: its ``datasets`` list (BEIR names expanded), else all of them. A system that
    reads others runs only where all of them run."""
    planned = list(datasets)
    chosen: dict[str, list[str]] = {}
    for family, systems in sections.items():
        for name, entry in systems.items():
            listed = entry.get("datasets")
            if listed is None:
                chosen[name] = planned
                continue
            wanted = {member for item in listed for member in ([item] if item in planned else expand_beir_name(item))}
            unknown = sorted(wanted - set(planned))
            if unknown:
                raise ConfigError(
                    f"{family}.{name}.datasets: '{unknown[0]}' is not a configured dataset (known: {', '.join(planned)})"
                )
            chosen[name] = [dataset for dataset in planned if dataset in wanted]
    for family, systems in sections.items():
        for name, entry in systems.items():
            for key, upstream in families[family].upstream(entry):
                missing = [dataset for dataset in chosen[name] if dataset not in chosen.get(upstream, [])]
                if upstream in chosen and missing:
                    raise ConfigError(
                        f"{family}.{name}.datasets: '{upstream}' ({key}) does not run on {missing[0]}; limit '{name}' to its datasets"
                    )
    return chosen
