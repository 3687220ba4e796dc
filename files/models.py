"""Users' files: each row describes one stored object (its bytes are in the `files` storage,
local or S3-compatible, under `storage_key`). Graphs carry them as {"$file": id}."""

import uuid

from django.conf import settings
from django.db import models


class StoredFile(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="files"
    )
    name = models.CharField(max_length=255)
    # Sniffed from the bytes (or, for text without a signature, the name), never the sender's.
    content_type = models.CharField(max_length=200)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    # Where the bytes are in the storage: "<owner id>/<file id>", never a name a user chose.
    storage_key = models.CharField(max_length=300)
    # The run (and node execution) that stored it, if a block did; no foreign key: runs are
    # deleted on their own schedule.
    execution_id = models.UUIDField(null=True, blank=True)
    # A block's storing is idempotent per node execution and call: a task run twice stores
    # the file once.
    source_key = models.CharField(max_length=200, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "source_key"], name="file_source_key_unique_per_owner"
            )
        ]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["created_at"]),
        ]
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.size} bytes)"
