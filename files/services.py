"""Users' files: stored once under a quota, read and deleted by their owner only, deleted
when past FILES_RETENTION_DAYS. The bytes go to the `files` storage (settings.STORAGES:
the local file system by default, an S3-compatible bucket through django-storages when
FILES_S3_BUCKET is set); the rows say whose they are and what they hold."""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import mimetypes
import re
import uuid
from datetime import timedelta
from typing import IO

import filetype
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile, File
from django.core.files.storage import storages
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from .models import StoredFile

SNIFF_BYTES = 8192
# Types whose files are text but whose names say more than "text/plain".
TEXT_TYPES = {"application/json", "application/xml", "application/yaml", "application/x-yaml"}


class FileRefused(Exception):
    """Too large, or past the owner's quota: a 4xx that says which."""


class FileNotFound(Exception):
    """No such file of this owner (another user's is not found either)."""


def files_storage():
    return storages["files"]


def file_store(
    *, owner_id: int, name: str, content: bytes | IO[bytes], execution_id=None,
    source_key: str | None = None,
) -> StoredFile:  # fmt: skip
    """Stores `content` (bytes, or a file object such as an upload) as the owner's file.
    With a `source_key` the same key stores once (the first file is answered again).
    FileRefused when it passes FILES_MAX_BYTES or the owner's FILES_QUOTA_BYTES."""
    body = File(content) if not isinstance(content, bytes) else ContentFile(content)
    size, digest, head = _measured(body)
    if size > settings.FILES_MAX_BYTES:
        raise FileRefused(f"the file is {size} bytes; the limit is {settings.FILES_MAX_BYTES}")
    with transaction.atomic():
        # One owner's stores take turns here, so two at once cannot both pass the quota.
        list(get_user_model().objects.select_for_update().filter(pk=owner_id).values_list("pk"))
        if source_key is not None:
            stored = StoredFile.objects.filter(owner_id=owner_id, source_key=source_key).first()
            if stored is not None:
                return stored
        used = StoredFile.objects.filter(owner_id=owner_id).aggregate(s=Sum("size"))["s"] or 0
        if used + size > settings.FILES_QUOTA_BYTES:
            raise FileRefused(
                f"your files would take {used + size} bytes; your quota is "
                f"{settings.FILES_QUOTA_BYTES} (delete some: DELETE /api/files/{{id}}/)"
            )
        file_id = uuid.uuid4()
        clean = clean_name(name)
        key = files_storage().save(f"{owner_id}/{file_id}", body)
        try:
            return StoredFile.objects.create(
                id=file_id, owner_id=owner_id, name=clean, content_type=sniffed_type(head, clean),
                size=size, sha256=digest, storage_key=key, execution_id=execution_id,
                source_key=source_key,
            )  # fmt: skip
        except Exception:
            files_storage().delete(key)
            raise


def file_get(*, owner_id: int, file_id) -> StoredFile:
    try:
        return StoredFile.objects.get(pk=uuid.UUID(str(file_id)), owner_id=owner_id)
    except (ValueError, StoredFile.DoesNotExist):
        raise FileNotFound(f"no file {file_id}") from None


def file_open(stored: StoredFile) -> IO[bytes]:
    """The file's bytes, to stream (the caller closes it)."""
    return files_storage().open(stored.storage_key, "rb")


def file_bytes(stored: StoredFile, limit: int) -> bytes:
    """The file's bytes, FileRefused past `limit`."""
    if stored.size > limit:
        raise FileRefused(f"{stored.name} is {stored.size} bytes; at most {limit} are read")
    with file_open(stored) as handle:
        return handle.read(limit + 1)[:limit]


def file_delete(*, owner_id: int, file_id) -> None:
    stored = file_get(owner_id=owner_id, file_id=file_id)
    with transaction.atomic():
        StoredFile.objects.filter(pk=stored.pk).delete()
        transaction.on_commit(lambda: files_storage().delete(stored.storage_key))


def files_expired_delete() -> int:
    """Deletes files older than FILES_RETENTION_DAYS (rows, then their bytes); how many."""
    cutoff = timezone.now() - timedelta(days=settings.FILES_RETENTION_DAYS)
    deleted = 0
    while batch := list(StoredFile.objects.filter(created_at__lt=cutoff)[:500]):
        StoredFile.objects.filter(pk__in=[f.pk for f in batch]).delete()
        for stored in batch:
            files_storage().delete(stored.storage_key)
        deleted += len(batch)
    return deleted


def files_used(owner_id: int) -> int:
    return StoredFile.objects.filter(owner_id=owner_id).aggregate(s=Sum("size"))["s"] or 0


def unowned_files(owner_id: int, file_ids: set[str]) -> set[str]:
    """Of these ids, the ones that name none of this owner's files (malformed ones too)."""
    valid = set()
    for file_id in file_ids:
        with contextlib.suppress(ValueError):
            valid.add(uuid.UUID(file_id))
    owned = {
        str(pk)
        for pk in StoredFile.objects.filter(owner_id=owner_id, pk__in=valid).values_list(
            "pk", flat=True
        )
    }
    return {f for f in file_ids if _canonical(f) not in owned}


def _canonical(file_id: str) -> str:
    try:
        return str(uuid.UUID(file_id))
    except ValueError:
        return file_id


def clean_name(name: str) -> str:
    """A display name: no path, no control characters, at most 255 characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip() or "file"
    return base[-255:]


def sniffed_type(head: bytes, name: str) -> str:
    """The content type the bytes show (their signature); text without one is named by its
    file name when that says a text type, else text/plain; anything else is binary."""
    kind = filetype.guess(head)
    if kind is not None:
        return kind.mime
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return "application/octet-stream"
    guessed = mimetypes.guess_type(name)[0]
    if guessed and (guessed.startswith("text/") or guessed in TEXT_TYPES):
        return guessed
    return "text/plain"


def _measured(body: File) -> tuple[int, str, bytes]:
    """Size, SHA-256 and first bytes, reading it once; it is rewound for saving."""
    digest, size, head = hashlib.sha256(), 0, b""
    body.seek(0)
    for chunk in body.chunks():
        if len(head) < SNIFF_BYTES:
            head += chunk[: SNIFF_BYTES - len(head)]
        digest.update(chunk)
        size += len(chunk)
    body.seek(0)
    return size, digest.hexdigest(), head
