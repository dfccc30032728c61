"""Plugins of the whole suite: the secret scan (``tests/secret_scan.py``) watches every test."""

pytest_plugins = ["secret_scan"]
