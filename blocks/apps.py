from django.apps import AppConfig


class BlocksConfig(AppConfig):
    name = "blocks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import registry

        registry.load_catalogue()
