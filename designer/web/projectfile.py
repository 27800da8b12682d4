from django.http import HttpRequest, HttpResponse
from django.utils.text import slugify

from designer.authoring import projectfile
from designer.teams.access import get_membership, get_project


def export(request: HttpRequest, team: str, project: int) -> HttpResponse:
    project_obj = get_project(get_membership(request, team), project)
    response = HttpResponse(projectfile.dumps(project_obj), content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{slugify(project_obj.name) or "project"}.mailwright.json"'
    return response
