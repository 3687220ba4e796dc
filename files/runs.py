"""A run's access to its owner's files, handed to blocks as RunContext.files: blocks store
and read through it and never see another user's files (blocks import no app)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from blocks.base import BlockError
from blocks.files import FileContent, file_id_of

from .services import FileNotFound, FileRefused, file_bytes, file_get, file_store


@dataclass(frozen=True)
class RunFiles:
    owner_id: int
    execution_id: Any
    node_execution_id: int

    def store(self, name: str, content: bytes, call: str) -> dict[str, str]:
        """Stores `content` once per node execution and `call`; its reference."""
        try:
            stored = file_store(
                owner_id=self.owner_id, name=name, content=content,
                execution_id=self.execution_id,
                source_key=f"node:{self.node_execution_id}:{call}",
            )  # fmt: skip
        except FileRefused as exc:
            raise BlockError(str(exc)) from exc
        return {"$file": str(stored.pk)}

    def read(self, reference: Any, limit: int | None = None) -> FileContent:
        """The file a reference names, if the run's owner has it (BlockError otherwise)."""
        file_id = file_id_of(reference)
        try:
            stored = file_get(owner_id=self.owner_id, file_id=file_id)
            data = file_bytes(stored, limit or settings.FILES_READ_MAX_BYTES)
        except (FileNotFound, FileRefused) as exc:
            raise BlockError(str(exc)) from exc
        return FileContent(stored.name, stored.content_type, data)
