"""twilio-video-operator: Twilio Video rooms, compositions and signing keys as Kubernetes resources."""

__version__ = "0.1.0"

API_GROUP = "video.openclaw.io"
API_VERSION = "v1alpha1"
