"""Reads of the demo app: the row counts `smileloop stats` prints (whole database, every chain)."""

from smileloop.clinics.models import Clinic, Staff
from smileloop.customers.models import Customer, Household, Identity
from smileloop.visits.models import Appointment, Order, TreatmentPlan

STATS_KEYS = ("clinics", "staff", "customers", "identities", "families", "appointments", "orders", "treatment_plans")


def stats_counts() -> dict[str, int]:
    """Counts in STATS_KEYS order; customers are live people (merged tombstones are not counted)."""
    return {
        "clinics": Clinic.objects.count(),
        "staff": Staff.objects.count(),
        "customers": Customer.objects.filter(merged_into__isnull=True).count(),
        "identities": Identity.objects.count(),
        "families": Household.objects.count(),
        "appointments": Appointment.objects.count(),
        "orders": Order.objects.count(),
        "treatment_plans": TreatmentPlan.objects.count(),
    }
