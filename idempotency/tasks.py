from common.tasks import task

from . import services


@task("idempotency.purge_expired")
def purge_expired() -> None:
    services.purge_expired()
