"""Login backend for staff: Django's ModelBackend, except that loading the logged-in user also loads their
staff profile, in the same query. Every staff page reads `request.user.staff` (scope, navigation, the user
chip), which was a second query on every request."""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend


class StaffModelBackend(ModelBackend):
    def get_user(self, user_id):
        user_model = get_user_model()
        try:
            user = user_model._default_manager.select_related("staff").get(pk=user_id)
        except user_model.DoesNotExist:
            return None
        return user if self.user_can_authenticate(user) else None
