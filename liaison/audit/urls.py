from django.urls import path

from liaison.audit import views

app_name = "audit"
urlpatterns = [
    path("", views.events, name="events"),
    path("<int:seq>/", views.event, name="event"),
]
