"""The real-Kubernetes tier (``docs/real-kubernetes.md``): every test here talks to the kube-apiserver of
k8s.io/kubernetes, with etcd, started once for the session by ``tests/real_kube.py``.

The ``real_kube`` fixture comes from ``tests/backend_plugin.py`` (the end-to-end suites of
``tests/integration`` and ``tests/chaos`` run on the same server). Where the tier cannot be had (no ``go`` on
PATH, a build or start that fails) its tests are skipped with the reason, except under ``CI=true``, where
they fail instead.
"""
