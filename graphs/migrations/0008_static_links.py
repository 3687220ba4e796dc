"""Links leaving a block with static output are static (graphs.md): saved ones said so only
in the engine's plan. The static blocks as of this migration: input, store_value."""

from django.db import migrations
from django.db.models import Exists, OuterRef

STATIC_BLOCKS = ("input", "store_value")


def mark_static(apps, schema_editor):
    Link = apps.get_model("graphs", "Link")
    Node = apps.get_model("graphs", "Node")
    static_source = Node.objects.filter(
        graph_version_id=OuterRef("graph_version_id"),
        node_id=OuterRef("source_id"),
        block__in=STATIC_BLOCKS,
    )
    Link.objects.filter(is_static=False).filter(Exists(static_source)).update(is_static=True)


class Migration(migrations.Migration):
    dependencies = [("graphs", "0007_run_budget")]
    operations = [migrations.RunPython(mark_static, migrations.RunPython.noop)]
