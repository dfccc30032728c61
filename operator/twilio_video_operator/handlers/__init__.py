"""kopf adapters: thin handlers that turn Kubernetes events into reconciler calls.

Every handler module in this package registers on :data:`registry`, e.g.
``@kopf.on.create("video.openclaw.io", "v1alpha1", "videorooms", registry=registry)``. The registry is
also made kopf's default, so a decorator without ``registry=`` lands in the same place.
:func:`install_handlers` imports every module of the package, which is all it takes to activate one.
"""

from __future__ import annotations

import importlib
import pkgutil

import kopf

# A plain registry: kopf's "smart" default would add login handlers for the `kubernetes`/`pykube`
# client libraries when they happen to be installed; the operator logs in on its own (see runner).
registry = kopf.OperatorRegistry()
kopf.set_default_registry(registry)


def install_handlers() -> kopf.OperatorRegistry:
    """Import every handler module in this package (each registers itself) and return the registry."""
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    return registry
