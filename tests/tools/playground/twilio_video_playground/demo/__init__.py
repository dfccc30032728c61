"""``make demo``: the product's story in one run, against the playground in a temporary directory.

1. the rooms of ``examples/*.yaml`` are applied and Ready (``rooms``);
2. an application authenticated as a ServiceAccount gets an Access Token from the operator's token
   service and a participant joins with it (``joining``);
3. a blocked identity joins and the operator removes it (``moderation``);
4. a recorded room is completed, composed, and its media delivered to a local S3 (``recording``);
5. the signing key is rotated while clients keep joining (``rotation``);
6. the operator's counters that moved (``counters``).

Every wait is bounded and says what it waited for; the first failed step ends the demo with exit code 1.
No secret (auth token, API secret, S3 key, JWT) is printed.
"""

from twilio_video_playground.demo.cli import main
from twilio_video_playground.demo.rooms import Convergence, wait_converged
from twilio_video_playground.demo.story import DEFAULT_TIMEOUT, STEPS, run_demo

__all__ = ["DEFAULT_TIMEOUT", "STEPS", "Convergence", "main", "run_demo", "wait_converged"]
