from common.tasks import task

from . import services


@task("accounts.purge_expired_tokens")
def purge_expired_tokens() -> None:
    services.tokens_purge_expired()
