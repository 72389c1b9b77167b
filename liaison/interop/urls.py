from django.urls import path

from liaison.interop import views

app_name = "interop"
urlpatterns = [
    path("", views.upload, name="upload"),
    path("<int:pk>/", views.status, name="status"),
    path("<int:pk>/mapping/", views.mapping, name="mapping"),
    path("<int:pk>/preview/", views.preview, name="preview"),
    path("<int:pk>/import/", views.commit, name="commit"),
]
