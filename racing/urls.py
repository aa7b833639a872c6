from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from live import views

admin.site.site_header = "Race office"
admin.site.site_title = "Race office"
admin.site.index_title = "Race day data"

urlpatterns = [
    path("", views.race_day, name="race-day"),
    path("races/<int:race_id>/", views.race_page, name="race-page"),
    path("healthz", views.health, name="health"),
    path("admin/", admin.site.urls),
    path("api/", include("races.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

handler404 = "racing.views.page_not_found"
handler500 = "racing.views.server_error"
