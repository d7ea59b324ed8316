from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from config.api import api
from smileloop.clinics.views import StaffLoginView, admin_login, admin_password_change, password_change

# Error pages in the reader's layout: staff workspace, or the member layout on patients' pages.
handler400 = "smileloop.core.error_pages.bad_request"
handler403 = "smileloop.clinics.views.permission_denied"  # advice by the reader's role
handler404 = "smileloop.core.error_pages.page_not_found"
handler500 = "smileloop.core.error_pages.server_error"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="customers:list", permanent=False)),
    path("login/", StaffLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/password/", password_change, name="account_password"),
    path("i18n/", include("django.conf.urls.i18n")),
    # Before the admin's own: its login URL is no second login form (our /login/, or a 403 for a non-admin login).
    path("admin/login/", admin_login),
    # Nor is its password change a second one (ours has the lockout and the audit): it leads to /account/password/.
    path("admin/password_change/", admin_password_change),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("customers/", include("smileloop.customers.urls")),
    path("imports/", include("smileloop.imports.urls")),
    path("membership/", include("smileloop.membership.urls")),
    path("loyalty/", include("smileloop.loyalty.urls")),
    path("checkout/", include("smileloop.checkout.urls")),
    path("tags/", include("smileloop.tagging.urls")),
    path("segments/", include("smileloop.segments.urls")),
    path("lifecycle/", include("smileloop.lifecycle.urls")),
    path("followups/", include("smileloop.followups.urls")),
    path("surveys/", include("smileloop.surveys.urls")),
    path("", include("smileloop.clinics.urls")),  # the audit log (/audit/)
]
