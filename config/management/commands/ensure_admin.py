from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Create the local superuser 'admin' (password $ADMIN_PASSWORD, default 'admin') if absent."
    )

    def handle(self, *args, **options):
        password = settings.ADMIN_PASSWORD
        if not password:
            raise CommandError("set ADMIN_PASSWORD: production has no default admin password")
        User = get_user_model()
        if User.objects.filter(username="admin").exists():
            self.stdout.write("superuser 'admin' exists")
            return
        User.objects.create_superuser("admin", "admin@localhost", password)
        self.stdout.write("created superuser 'admin'")
