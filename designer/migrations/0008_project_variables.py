import re

import django.db.models.deletion
from django.db import migrations, models

import designer.models.variables


def _copy_variables(apps, schema_editor):
    """Move the old JSON variables (Django admin's only way to set them) into rows, as plain values;
    a name that is no identifier could never be used as ``vars.NAME``, so it gets one."""
    Project = apps.get_model("designer", "Project")
    Variable = apps.get_model("designer", "Variable")
    for project in Project.objects.exclude(variables={}):
        if not isinstance(project.variables, dict):
            continue
        taken = set()
        for raw_name, value in project.variables.items():
            name = re.sub(r"\W", "_", str(raw_name))[:60] or "variable"
            if name[0].isdigit():
                name = f"_{name}"
            while name in taken:
                name = f"{name}_"
            taken.add(name)
            Variable.objects.create(project=project, name=name, value=value if isinstance(value, str) else str(value))


class Migration(migrations.Migration):

    dependencies = [
        ('designer', '0006_lease_token'),
    ]

    operations = [
        migrations.CreateModel(
            name='Variable',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=64, validators=[designer.models.variables.validate_variable_name])),
                ('value', models.TextField(blank=True, max_length=10000)),
                ('secret', models.BooleanField(default=False)),
                ('value_token', models.TextField(blank=True, editable=False)),
                ('description', models.CharField(blank=True, max_length=300)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='variable_set', to='designer.project')),
            ],
            options={
                'ordering': ['name'],
                'constraints': [models.UniqueConstraint(fields=('project', 'name'), name='variable_name_unique_in_project')],
            },
        ),
        migrations.RunPython(_copy_variables, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name='project',
            name='variables',
        ),
    ]
