from django.conf import settings
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # Built without locking the runs table against writes: it is on every run's path.
    atomic = False

    dependencies = [
        ("executions", "0006_outbox"),
        ("graphs", "0004_graph_webhook_url"),
        ("schedules", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="graphexecution",
            index=models.Index(
                condition=models.Q(("depth", 0)),
                fields=["user", "status", "created_at"],
                name="top_runs_of_user",
            ),
        ),
    ]
