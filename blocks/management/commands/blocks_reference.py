"""Write the block reference page (docs/blocks.md) from the registry."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from blocks.reference import render


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--output", default=str(Path(settings.BASE_DIR) / "docs" / "blocks.md"))

    def handle(self, *args, output, **options):
        Path(output).write_text(render())
        self.stdout.write(f"wrote {output}")
