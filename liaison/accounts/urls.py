from django.contrib.auth import views as auth_views
from django.urls import path

from liaison.accounts import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("users/", views.users, name="users"),
    path("users/new/", views.user_edit, name="user_new"),
    path("users/<int:pk>/", views.user_edit, name="user_edit"),
    path("tokens/", views.tokens, name="tokens"),
    path("mfa/", views.mfa, name="mfa"),
    path("mfa/verify/", views.mfa_verify, name="mfa_verify"),
    path("users/<int:pk>/mfa-reset/", views.mfa_reset, name="mfa_reset"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token_revoke"),
]
