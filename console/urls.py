from django.urls import path

from . import views

app_name = "console"

urlpatterns = [
    path("runs/", views.runs, name="runs"),
    path("runs/<uuid:execution_id>/", views.run_page, name="run"),
    path("graphs/", views.graphs, name="graphs"),
    path("graphs/<uuid:graph_id>/", views.graph_page, name="graph"),
    path("reviews/", views.reviews, name="reviews"),
    path("credits/", views.credits, name="credits"),
    path("profile/", views.profile, name="profile"),
]
