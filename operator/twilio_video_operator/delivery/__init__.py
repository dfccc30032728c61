"""Delivery of finished media to object storage (S3 and S3-compatible services).

Usage::

    deliverer = S3Deliverer()
    result = await deliverer.deliver(
        source_url=media_url,
        target=S3Target(bucket="media", key="ns/name/CJ....mp4", endpoint=None, region="eu-west-1"),
        credentials=S3Credentials.from_secret_data(secret_data),
        source_id="CJ...",
        expected_size=composition_size,
    )
    await deliverer.close()

Failures raise :class:`DeliveryError` with a condition reason and a ``retryable`` flag.
"""

from twilio_video_operator.delivery.credentials import S3Credentials
from twilio_video_operator.delivery.errors import DeliveryError, DeliveryReason
from twilio_video_operator.delivery.s3 import DEFAULT_PART_SIZE, MIN_PART_SIZE, DeliveryResult, S3Deliverer
from twilio_video_operator.delivery.target import S3Target

__all__ = [
    "DEFAULT_PART_SIZE",
    "MIN_PART_SIZE",
    "DeliveryError",
    "DeliveryReason",
    "DeliveryResult",
    "S3Credentials",
    "S3Deliverer",
    "S3Target",
]
