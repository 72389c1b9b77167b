from django.urls import path

from liaison.interop import fhir_api

app_name = "fhir"
urlpatterns = [
    path("", fhir_api.bundle, name="base"),
    path("metadata", fhir_api.metadata, name="metadata"),
    path("ServiceRequest", fhir_api.service_request, name="service_request"),
    path("Bundle", fhir_api.bundle, name="bundle"),
    path("Task", fhir_api.tasks, name="tasks"),
    path("Task/<str:task_id>", fhir_api.task, name="task"),
]
