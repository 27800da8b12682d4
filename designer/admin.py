from django.contrib import admin

from designer.models import Activity, AuditEntry, Connection, ConnectionCheck, Membership, Project, Team


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "updated_at"]
    list_filter = ["team"]
    search_fields = ["name"]


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    # secrets_token is not editable and never shown; operators change secrets in the app.
    list_display = ["name", "connector", "team", "project", "updated_at"]
    list_filter = ["connector", "team"]
    search_fields = ["name"]
    readonly_fields = ["created_by", "created_at", "updated_at"]


@admin.register(Activity)
class ActivityAdmin(admin.ModelAdmin):
    list_display = ["name", "type", "project", "connection"]
    list_filter = ["type"]


@admin.register(ConnectionCheck)
class ConnectionCheckAdmin(admin.ModelAdmin):
    list_display = ["connection", "status", "requested_by", "created_at", "finished_at"]
    readonly_fields = ["connection", "status", "steps", "requested_by", "finished_at"]


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "username", "action", "object_type", "object_name", "team"]
    list_filter = ["action", "object_type", "team"]
    readonly_fields = [f.name for f in AuditEntry._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
