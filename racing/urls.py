from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

import races.converters  # noqa: F401 - registers the <id:...> path converter
from live import health
from live.board import views

admin.site.site_header = "Race office"
admin.site.site_title = "Race office"
admin.site.index_title = "Race day data"
# The home page leads with the race-day view (races/admin_race_day.py): where race day starts.
admin.site.index_template = "admin/races/index.html"

urlpatterns = [
    path("", views.race_day, name="race-day"),
    path("races/<id:race_id>/", views.race_page, name="race-page"),
    path("healthz", health.health, name="health"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("api/", include("races.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

handler404 = "racing.views.page_not_found"
handler500 = "racing.views.server_error"
