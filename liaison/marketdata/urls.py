from django.urls import path

from liaison.marketdata import views

app_name = "marketdata"
urlpatterns = [
    path("opportunities/", views.opportunities, name="opportunities"),
    path("opportunities/<int:provider_pk>/flag/", views.flag, name="flag"),
    path("prospects/", views.prospects, name="prospects"),
    path("changes/", views.changes, name="changes"),
    path("imports/", views.imports, name="imports"),
    path("imports/new/", views.import_new, name="import_new"),
    path("imports/<int:pk>/", views.import_detail, name="import"),
]
