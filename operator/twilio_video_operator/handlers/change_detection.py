"""kopf's change detection, left to the controller for the kinds that detect spec changes themselves.

kopf records the spec it handled in an annotation (its diff-base) after every create and update, one PATCH
of the object each time. A kind listed here detects spec changes from ``metadata.generation`` against the
``status.observedGeneration`` its controller writes anyway (see :mod:`.videoroom`), so for it kopf is told
that nothing changed since it last looked (``fetch`` answers with the object's own essence) and nothing is
stored. kopf still adds its finalizer, calls resume handlers on start and delete handlers on deletion;
it never sees a create or an update of those kinds. Every other kind keeps kopf's annotation, without the
fields the operator writes itself (``ignored_fields``): its own PATCH is not a change to reconcile again.
"""

from __future__ import annotations

from collections.abc import Collection

import kopf


class ControllerDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's annotation diff-base, except for the ``(apiVersion, kind)`` pairs of ``controller_kinds``."""

    def __init__(
        self,
        *,
        controller_kinds: Collection[tuple[str, str]],
        prefix: str,
        key: str,
        ignored_fields: Collection[tuple[str, ...]] = (),
    ) -> None:
        super().__init__(prefix=prefix, key=key, ignored_fields=list(ignored_fields))
        self._controller_kinds = frozenset(controller_kinds)

    def _detected_by_controller(self, body: kopf.Body) -> bool:
        return (body.get("apiVersion"), body.get("kind")) in self._controller_kinds

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        if self._detected_by_controller(body):
            return self.build(body=body)
        return super().fetch(body=body)

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        if self._detected_by_controller(body):
            return
        super().store(body=body, patch=patch, essence=essence)
