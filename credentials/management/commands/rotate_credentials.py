"""Re-encrypt every stored credential with the first key of CREDENTIALS_ENCRYPTION_KEYS."""

from django.core.management.base import BaseCommand
from django.db import transaction
from tqdm import tqdm

from credentials.crypto import UndecryptableCredential, rotate
from credentials.models import Credential


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options):
        ids = list(Credential.objects.values_list("pk", flat=True))
        failed = 0
        for pk in tqdm(ids, desc="rotating credentials", unit="credential"):
            with transaction.atomic():
                row = Credential.objects.select_for_update().filter(pk=pk).first()
                if row is None:
                    continue  # deleted meanwhile
                try:
                    row.ciphertext = rotate(row.ciphertext)
                except UndecryptableCredential:
                    failed += 1
                    self.stderr.write(f"credential {row.name!r} of user {row.owner_id}: no key")
                    continue
                row.save(update_fields=["ciphertext"])
        self.stdout.write(f"rotated {len(ids) - failed} of {len(ids)} credentials")
        if failed:
            raise SystemExit(1)
