from django.contrib import admin
from django.urls import path

from races import views

admin.site.site_header = "Race office"
admin.site.site_title = "Race office"
admin.site.index_title = "Race day data"

urlpatterns = [
    path("", views.race_day, name="race-day"),
    path("admin/", admin.site.urls),
]
