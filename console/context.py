"""The console's template context: how many reviews wait for the user (the nav's badge)."""

from executions.reviews import reviews_of


def console(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"pending_reviews": reviews_of(user, status="pending").count()}
