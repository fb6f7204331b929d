"""The stage activities: thin adapters that read a stage's inputs from the store, call the plain functions in
`clipper/`, write the outputs and heartbeat (`runtime.py` is what they share).

Each module defines its activity classes (`@activity.defn(name=...)` on a `run` method, dependencies injected
through the constructor). Which pool runs an activity type is the stage table's business
(clipper/job/stages.py); `activity_classes()` finds the classes, so a new activity needs no registration list.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from temporalio import activity


@cache
def activity_classes() -> dict[str, type]:
    """Every activity class of this package by its activity type."""
    found: dict[str, type] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if not (isinstance(obj, type) and obj.__module__ == module.__name__ and callable(getattr(obj, "run", None))):
                continue
            definition = activity._Definition.from_callable(obj.run)
            if definition is not None and definition.name:
                if definition.name in found:
                    raise TypeError(f"activity type {definition.name} defined twice: {found[definition.name]}, {obj}")
                found[definition.name] = obj
    return found
