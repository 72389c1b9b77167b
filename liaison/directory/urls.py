from django.urls import path

from liaison.directory import views

app_name = "directory"
urlpatterns = [
    path("providers/", views.providers, name="providers"),
    path("providers/new/", views.provider_edit, name="provider_new"),
    path("providers/<int:pk>/", views.provider_detail, name="provider"),
    path("providers/<int:pk>/edit/", views.provider_edit, name="provider_edit"),
    path("practices/", views.practices, name="practices"),
    path("practices/new/", views.practice_new, name="practice_new"),
    path("practices/<int:pk>/", views.practice_detail, name="practice"),
    path("practices/<int:pk>/edit/", views.practice_edit, name="practice_edit"),
    path("practices/<int:practice_pk>/locations/new/", views.location_edit, name="location_new"),
    path("locations/<int:pk>/edit/", views.location_edit, name="location_edit"),
    path("practices/<int:practice_pk>/contacts/new/", views.contact_edit, name="contact_new"),
    path("contacts/", views.contacts, name="contacts"),
    path("contacts/<int:pk>/edit/", views.contact_edit, name="contact_edit"),
]
