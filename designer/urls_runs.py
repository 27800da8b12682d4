"""URLs of runs: run now, live progress, history, replay, source health.

Included under /t/<team>/ by designer/urls.py.
"""

urlpatterns: list = []
