"""Plugins of the whole suite: the secret scan (``tests/secret_scan.py``) watches every test, and
``tests/backend_plugin.py`` gives tests their Kubernetes API (the embedded one, or the real kube-apiserver
with the ``real_kube`` fixture and the ``both_backends`` marker) and counts the tests of each."""

pytest_plugins = ["secret_scan", "backend_plugin"]
