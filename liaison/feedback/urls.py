from django.urls import path

from liaison.feedback import views

app_name = "feedback"
urlpatterns = [
    path("issues/", views.issues, name="issues"),
    path("issues/new/", views.issue_new, name="issue_new"),
    path("issues/<int:pk>/", views.issue_detail, name="issue"),
    path("issues/<int:pk>/edit/", views.issue_edit, name="issue_edit"),
    path("issues/<int:pk>/<str:action>/", views.issue_action, name="issue_action"),
    path("surveys/", views.surveys, name="surveys"),
    path("surveys/send/<int:practice_pk>/", views.survey_send, name="survey_send"),
    path("s/<str:token>/", views.survey_answer, name="survey_answer"),
]
