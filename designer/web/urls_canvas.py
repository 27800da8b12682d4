"""URLs of the designer canvas: palette, workflows, operations, activities, mapping and preview.

Included under /t/<team>/ by designer/urls.py. The designer page itself is the project page
(``project``, served by ``canvas.designer``).
"""

from django.urls import path

from designer.web import activities, canvas, operations

urlpatterns = [
    path("projects/<int:project>/workflows/new/", canvas.workflow_create, name="workflow_create"),
    path("workflows/<int:workflow>/rename/", canvas.workflow_rename, name="workflow_rename"),
    path("workflows/<int:workflow>/move/", canvas.workflow_move, name="workflow_move"),
    path("workflows/<int:workflow>/delete/", canvas.workflow_delete, name="workflow_delete"),
    path("projects/<int:project>/operations/new/", canvas.operation_create, name="operation_create"),
    path("operations/<int:operation>/", operations.operation_detail, name="operation"),
    path("operations/<int:operation>/card/", canvas.operation_card, name="operation_card"),
    path("operations/<int:operation>/move/", canvas.operation_move, name="operation_move"),
    path("operations/<int:operation>/delete/", canvas.operation_delete, name="operation_delete"),
    path("operations/<int:operation>/save/", operations.operation_save, name="operation_save"),
    path("operations/<int:operation>/validate/", operations.operation_validate, name="operation_validate"),
    path("operations/<int:operation>/preview/", operations.operation_preview, name="operation_preview"),
    path("operations/<int:operation>/messages/", operations.operation_messages, name="operation_messages"),
    path("projects/<int:project>/activities/new/<slug:kind>/", activities.activity_create, name="activity_create"),
    path("projects/<int:project>/folders/", activities.activity_folders, name="activity_folders"),
    path("activities/<int:activity>/", activities.activity_edit, name="activity_edit"),
    path("activities/<int:activity>/delete/", activities.activity_delete, name="activity_delete"),
]
