"""URLs of the designer canvas: palette, workflows, operations, activities, mapping and preview.

Included under /t/<team>/ by designer/urls.py.
"""

urlpatterns: list = []
