from django.urls import path

from liaison.campaigns import public

app_name = "campaigns_public"
urlpatterns = [
    path("u/<str:token>/", public.unsubscribe, name="unsubscribe"),
    path("q/<str:token>/", public.quiz, name="quiz"),
    path("r/<str:token>/", public.rsvp, name="rsvp"),
    path("o/<str:token>/", public.open_pixel, name="open"),
    path("l/<str:token>/<int:index>/", public.click, name="click"),
]
