from django.urls import path

from liaison.campaigns import views

app_name = "campaigns"
urlpatterns = [
    path("", views.campaign_list, name="campaigns"),
    path("new/", views.campaign_new, name="campaign_new"),
    path("<int:pk>/", views.campaign_detail, name="campaign"),
    path("<int:pk>/edit/", views.campaign_edit, name="campaign_edit"),
    path("<int:pk>/preview/", views.campaign_preview, name="preview"),
    path("<int:pk>/letter.pdf", views.letter_preview, name="letter_preview"),
    path("<int:pk>/send/", views.campaign_send, name="send"),
    path("<int:pk>/stop/", views.campaign_stop, name="stop"),
    path("<int:pk>/resend-uncertain/", views.campaign_resend_uncertain, name="resend_uncertain"),
    path("<int:pk>/recipients/", views.campaign_recipients, name="recipients"),
    path("<int:pk>/letters.pdf", views.letters_pdf, name="letters_pdf"),
    path("<int:pk>/quiz/", views.campaign_quiz, name="quiz"),
    path("<int:pk>/draw/", views.quiz_draw, name="draw"),
    path("<int:pk>/event/", views.campaign_event, name="event"),
    path("<int:pk>/check-in/", views.checkin, name="checkin"),
    path("<int:pk>/check-in/<int:recipient_pk>/", views.checkin_person, name="checkin_person"),
    path("segments/", views.segment_list, name="segments"),
    path("segments/new/", views.segment_new, name="segment_new"),
    path("segments/<int:pk>/", views.segment_detail, name="segment"),
    path("segments/<int:pk>/edit/", views.segment_edit, name="segment_edit"),
    path("templates/", views.template_list, name="templates"),
    path("templates/new/", views.template_new, name="template_new"),
    path("templates/<int:pk>/", views.template_edit, name="template_edit"),
    path("suppressions/", views.suppression_list, name="suppressions"),
    path("suppressions/add/", views.suppression_add, name="suppression_add"),
    path("suppressions/<int:pk>/remove/", views.suppression_remove, name="suppression_remove"),
]
