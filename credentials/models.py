"""Users' named secrets (API keys, tokens), encrypted at rest with Fernet (see crypto.py).
The value is write-only: nothing reads it back out except a worker resolving a node input."""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"


class Credential(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="credentials"
    )
    name = models.CharField(max_length=100, validators=[RegexValidator(NAME_PATTERN)])
    # Fernet token: AES-128-CBC + HMAC-SHA256 with a timestamp, base64 (crypto.py).
    ciphertext = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="credential_name_unique")
        ]
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} of {self.owner_id}"
