from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from accounts.apis import TokenApi, WsTicketApi
from console import views as console_views
from credentials.apis import CredentialDetailApi, CredentialListApi
from credits.apis import BalanceApi, BlockListApi, GrantApi, TransactionListApi
from executions.apis import (
    ExecutionControlApi,
    ExecutionDetailApi,
    ExecutionListApi,
    ExecutionNodeDetailApi,
    ExecutionNodeListApi,
    ExecutionOutputsApi,
    GraphExecuteApi,
)
from executions.log_apis import NodeLogApi
from executions.replay_apis import ReplayApi, ReplayCancelApi, ReplayDetailApi, ReplayPreviewApi
from executions.rerun_apis import RerunApi, RerunPreviewApi
from executions.review_apis import (
    EventApi,
    ReviewApproveApi,
    ReviewDetailApi,
    ReviewListApi,
    ReviewRejectApi,
)
from files.apis import FileDetailApi, FileInfoApi, FileListApi
from graphs.apis import (
    GraphDetailApi,
    GraphListApi,
    GraphVersionListApi,
    PresetDetailApi,
    PresetListApi,
)
from notifications.apis import MarkReadApi, NotificationListApi, RotateSecretApi, SettingsApi
from schedules.apis import OccurrenceListApi, ScheduleDetailApi, ScheduleListApi
from triggers.apis import DeliveryListApi, TriggerDetailApi, TriggerListApi, hook

from .api_index import api_index
from .health import health, ready
from .metrics import metrics_view

api = [
    path("auth/token/", TokenApi.as_view(), name="token"),
    path("auth/ws-ticket/", WsTicketApi.as_view(), name="ws-ticket"),
    path("blocks/", BlockListApi.as_view(), name="blocks"),
    path("graphs/", GraphListApi.as_view(), name="graphs"),
    path("graphs/<uuid:graph_id>/", GraphDetailApi.as_view(), name="graph"),
    path("graphs/<uuid:graph_id>/versions/", GraphVersionListApi.as_view(), name="graph-versions"),
    path("graphs/<uuid:graph_id>/execute/", GraphExecuteApi.as_view(), name="graph-execute"),
    path("graphs/<uuid:graph_id>/presets/", PresetListApi.as_view(), name="graph-presets"),
    path("presets/<uuid:preset_id>/", PresetDetailApi.as_view(), name="preset"),
    path("graphs/<uuid:graph_id>/triggers/", TriggerListApi.as_view(), name="graph-triggers"),
    path("triggers/<uuid:trigger_id>/", TriggerDetailApi.as_view(), name="trigger"),
    path(
        "triggers/<uuid:trigger_id>/deliveries/",
        DeliveryListApi.as_view(),
        name="trigger-deliveries",
    ),
    path("executions/", ExecutionListApi.as_view(), name="executions"),
    path("executions/<uuid:execution_id>/", ExecutionDetailApi.as_view(), name="execution"),
    path(
        "executions/<uuid:execution_id>/nodes/",
        ExecutionNodeListApi.as_view(),
        name="execution-nodes",
    ),
    path(
        "executions/<uuid:execution_id>/nodes/<int:node_execution_id>/",
        ExecutionNodeDetailApi.as_view(),
        name="execution-node",
    ),
    path(
        "executions/<uuid:execution_id>/nodes/<int:node_execution_id>/logs/",
        NodeLogApi.as_view(),
        name="execution-node-logs",
    ),
    path(
        "executions/<uuid:execution_id>/outputs/",
        ExecutionOutputsApi.as_view(),
        name="execution-outputs",
    ),
    *(
        path(
            f"executions/<uuid:execution_id>/{action}/",
            ExecutionControlApi.as_view(action=action),
            name=f"execution-{action}",
        )
        for action in ExecutionControlApi.actions
    ),
    path("executions/<uuid:execution_id>/rerun/", RerunApi.as_view(), name="execution-rerun"),
    path(
        "executions/<uuid:execution_id>/rerun/preview/",
        RerunPreviewApi.as_view(),
        name="execution-rerun-preview",
    ),
    path("graphs/<uuid:graph_id>/replay/", ReplayApi.as_view(), name="graph-replay"),
    path(
        "graphs/<uuid:graph_id>/replay/preview/",
        ReplayPreviewApi.as_view(),
        name="graph-replay-preview",
    ),
    path("replays/<uuid:replay_id>/", ReplayDetailApi.as_view(), name="replay"),
    path("replays/<uuid:replay_id>/cancel/", ReplayCancelApi.as_view(), name="replay-cancel"),
    path("reviews/", ReviewListApi.as_view(), name="reviews"),
    path("reviews/<uuid:review_id>/", ReviewDetailApi.as_view(), name="review"),
    path("reviews/<uuid:review_id>/approve/", ReviewApproveApi.as_view(), name="review-approve"),
    path("reviews/<uuid:review_id>/reject/", ReviewRejectApi.as_view(), name="review-reject"),
    path("events/", EventApi.as_view(), name="events"),
    path("credits/", BalanceApi.as_view(), name="credits"),
    path("credits/transactions/", TransactionListApi.as_view(), name="credit-transactions"),
    path("credits/grant/", GrantApi.as_view(), name="credit-grant"),
    path("notifications/", NotificationListApi.as_view(), name="notifications"),
    path("notifications/read/", MarkReadApi.as_view(), name="notifications-read"),
    path("notifications/settings/", SettingsApi.as_view(), name="notification-settings"),
    path(
        "notifications/settings/rotate-secret/",
        RotateSecretApi.as_view(),
        name="notification-secret",
    ),
    path("files/", FileListApi.as_view(), name="files"),
    path("files/<uuid:file_id>/", FileDetailApi.as_view(), name="file"),
    path("files/<uuid:file_id>/info/", FileInfoApi.as_view(), name="file-info"),
    path("credentials/", CredentialListApi.as_view(), name="credentials"),
    path("credentials/<str:name>/", CredentialDetailApi.as_view(), name="credential"),
    path("schedules/", ScheduleListApi.as_view(), name="schedules"),
    path("schedules/<uuid:schedule_id>/", ScheduleDetailApi.as_view(), name="schedule"),
    path(
        "schedules/<uuid:schedule_id>/occurrences/",
        OccurrenceListApi.as_view(),
        name="schedule-occurrences",
    ),
    # The docs are for everyone, never starved by the anonymous request rate.
    path("schema/", SpectacularAPIView.as_view(throttle_classes=[]), name="schema"),
    path(
        "docs/", SpectacularSwaggerView.as_view(url_name="schema", throttle_classes=[]), name="docs"
    ),
    path(
        "redoc/", SpectacularRedocView.as_view(url_name="schema", throttle_classes=[]), name="redoc"
    ),
]
api.insert(0, path("", api_index(api), name="api-index"))


urlpatterns = [
    path("api/", include(api)),
    path("admin/", admin.site.urls),
    path("", console_views.home, name="home"),
    path("console/", include("console.urls")),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/", include("django.contrib.auth.urls")),
    # The live page's first address, kept for links already given out.
    path("executions/<uuid:execution_id>/live/", console_views.run_page, name="execution-live"),
    path("hooks/<uuid:trigger_id>/", hook, name="hook"),
    path("health", health, name="health"),
    path("ready", ready, name="ready"),
    path("metrics", metrics_view, name="metrics"),
]

# Unknown paths and server errors answer JSON too, never an HTML page.
handler404 = "config.errors.not_found"
handler500 = "config.errors.server_error"
