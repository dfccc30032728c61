"""Annotations and labels users put on objects to steer the operator."""

from __future__ import annotations

from typing import Final

PREFIX: Final = "video.openclaw.io/"
#: ``"true"`` stops reconciling the object until removed.
PAUSED: Final = PREFIX + "paused"
#: Any new value forces a resync now.
RECONCILE_REQUESTED_AT: Final = PREFIX + "reconcile-requested-at"
#: SigningKeyRotation: any new value starts a rotation now.
ROTATE_REQUESTED_AT: Final = PREFIX + "rotate-requested-at"
#: Label of a Secret named by a VideoRoom's ``credentialsRef``: the operator watches Secrets that carry it
#: (any value) and reconciles the rooms naming one as soon as it changes. Without it, changes are read at
#: the next resync.
CREDENTIALS_LABEL: Final = PREFIX + "credentials"
