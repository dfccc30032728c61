"""Twilio status callbacks: signature checks, request limits, deduplication and hand-off to the operator.

Building blocks any callback endpoint can reuse:

- :mod:`.signature`: ``X-Twilio-Signature`` verification against ``PUBLIC_BASE_URL`` + path;
- :mod:`.accounts`: which Auth Token verifies callbacks of which account;
- :mod:`.dedupe`: bounded memory of events already accepted;
- :mod:`.channel`: a bounded queue from the HTTP handler to the processing task;
- :mod:`.endpoint`: the aiohttp handler doing all of the above in order (405, 413, 400, 403, 503, 204);
- :mod:`.hub`: the channels and accounts shared by the HTTP server and the kopf handlers of one operator;
- :mod:`.handoff`: on a replica that does not lead, the consumer that passes verified events to the leader.

:mod:`.room_events` and :mod:`.composition_events` serve ``POST /twilio/room-events`` and
``POST /twilio/composition-events`` with them.
"""
