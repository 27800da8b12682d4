"""URLs of runs: run now, live progress, history, replay, source health, project import.

Included under /t/<team>/ by designer/urls.py.
"""

from django.urls import path

from designer.web import card_runs, health, runs

urlpatterns = [
    path("operations/<int:operation>/run/", runs.operation_run, name="operation_run"),
    path("runs/", runs.run_list, name="runs"),
    path("runs/chart/", runs.run_chart, name="runs_chart"),
    path("projects/<int:project>/runs/", runs.run_list, name="project_runs"),
    path("projects/<int:project>/runs/chart/", runs.run_chart, name="project_runs_chart"),
    path("runs/<int:run>/", runs.run_page, name="run"),
    path("runs/<int:run>/progress/", runs.run_progress, name="run_progress"),
    path("runs/<int:run>/badge/", card_runs.run_badge, name="run_badge"),
    path("runs/<int:run>/cancel/", runs.run_cancel, name="run_cancel"),
    path("runs/<int:run>/records/<int:record>/", runs.record_page, name="run_record"),
    path("runs/<int:run>/records/<int:record>/replay/", runs.record_replay, name="record_replay"),
    path("sources/", health.sources, name="sources"),
    path("projects/import/", runs.project_import, name="project_import"),
]
