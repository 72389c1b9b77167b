from django.urls import path

from liaison.referrals import views

app_name = "referrals"
urlpatterns = [
    path("", views.queue, name="queue"),
    path("new/", views.intake, name="intake"),
    path("bulk/", views.bulk, name="bulk"),
    path("referrer-options/", views.referrer_options, name="referrer_options"),
    path("service-levels/", views.service_levels, name="service_levels"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/edit/", views.edit, name="edit"),
    path("<int:pk>/status/", views.change_status, name="change_status"),
    path("<int:pk>/contact/", views.record_contact, name="contact"),
    path("<int:pk>/note/", views.add_note, name="note"),
    path("<int:pk>/documents/", views.upload_document, name="upload"),
    path("<int:pk>/documents/<int:doc_pk>/", views.document, name="document"),
    path("<int:pk>/letters/<int:notification_pk>/", views.letter, name="letter"),
    path("<int:pk>/letters/<int:notification_pk>/sent/", views.letter_sent, name="letter_sent"),
    path("offices/<int:location_pk>/updates/", views.office_updates, name="office_updates"),
    path("<int:pk>/match/", views.match_referrer, name="match_referrer"),
    path("<int:pk>/refer-out/", views.refer_out, name="refer_out"),
    path("<int:pk>/emergency-access/", views.emergency_access, name="emergency_access"),
    path("reciprocity/", views.reciprocity, name="reciprocity"),
]
