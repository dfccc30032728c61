"""The local playground: an embedded Kubernetes API and the Twilio emulator on 127.0.0.1, with the
operator running against both (``twilio-video-playground``, ``twilio-video-operator dev``,
``make demo``). Its own distribution; the operator never imports it."""
