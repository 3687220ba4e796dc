"""Beat deletes files past FILES_RETENTION_DAYS daily."""

from common.tasks import task

from .services import files_expired_delete


@task("files.retention")
def retention() -> None:
    files_expired_delete()
