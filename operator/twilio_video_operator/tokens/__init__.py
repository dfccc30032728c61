"""Twilio Video Access Tokens: minting, the ``POST /v1/token`` service and the ``token`` command.

- :mod:`.minting`: builds the HS256 JWT exactly as ``twilio.jwt.access_token.AccessToken`` does;
- :mod:`.policy`: identity rules, the room's access and moderation rules, the lifetime;
- :mod:`.rooms`: reads a room and the key that signs its tokens from Kubernetes (short cache);
- :mod:`.auth`: TokenReview and SubjectAccessReview with a short, bounded cache;
- :mod:`.ratelimit`: token buckets per caller, identity, room and source address;
- :mod:`.connect_options`: twilio-video.js connect options (room ``clientProfile`` over the defaults);
- :mod:`.cache`: the short, bounded caches the service reads through;
- :mod:`.service`: the HTTP endpoint; :mod:`.cli`: ``twilio-video-operator token``.
"""
