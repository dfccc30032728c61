"""One controller per kind, all of one shape: observe the object, plan the next step (a pure function in
:mod:`twilio_video_operator.reconcilers`), act through ports, and report an :class:`~.outcome.Outcome`.

Controllers know nothing of kopf: the handlers turn kopf's triggers into controller calls and the
controller's outcomes into kopf's answers (:mod:`twilio_video_operator.handlers._outcomes`, the one place
that does). Their Kubernetes side is in :mod:`twilio_video_operator.kube`; their credentials come from
the one connector of :mod:`.credentials`.
"""
