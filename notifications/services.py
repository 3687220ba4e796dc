from typing import Any

from .models import Notification


def notify(*, user_id: int, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
    """Record a notification for the user (in the caller's transaction)."""
    Notification.objects.create(user_id=user_id, kind=kind, message=message, data=data or {})
