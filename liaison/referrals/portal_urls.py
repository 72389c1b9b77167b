from django.urls import path

from liaison.referrals import portal

app_name = "portal"
urlpatterns = [
    path("", portal.start, name="start"),
    path("login/<str:token>/", portal.login, name="login"),
    path("logout/", portal.logout, name="logout"),
    path("referrals/", portal.referrals, name="referrals"),
    path("referrals/new/", portal.new_referral, name="new"),
]
