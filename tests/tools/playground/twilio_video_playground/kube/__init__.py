"""An embedded Kubernetes API server for the playground and the tests, built on kmock."""

from twilio_video_playground.kube.reviews import AccessRule
from twilio_video_playground.kube.server import EmbeddedKubernetes

__all__ = ["AccessRule", "EmbeddedKubernetes"]
