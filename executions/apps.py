from django.apps import AppConfig


class ExecutionsConfig(AppConfig):
    name = "executions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from credits.services import node_charged

        from .costs import add_node_cost

        node_charged.connect(add_node_cost, dispatch_uid="executions.add_node_cost")
