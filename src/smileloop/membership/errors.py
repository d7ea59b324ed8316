"""Typed membership errors with stable codes. A refused write changes nothing (services are atomic and
check every rule before writing)."""

from smileloop.core.errors import Conflict, DomainError


class MembershipInputError(DomainError):
    """Wrong input for the current state of the programme (422, with the field named)."""

    status = 422


class MembershipExists(Conflict):
    code = "membership_exists"


class NotAMember(Conflict):
    code = "not_a_member"


class MembershipNotActive(Conflict):
    code = "membership_not_active"


class LifetimeMembership(Conflict):
    code = "lifetime_membership"


class PlanInactive(MembershipInputError):
    code = "plan_inactive"


class TierNotInPlan(MembershipInputError):
    code = "tier_not_in_plan"


class NotQualified(MembershipInputError):
    code = "not_qualified"


class NotAnUpgrade(MembershipInputError):
    code = "not_an_upgrade"


class NotADowngrade(MembershipInputError):
    code = "not_a_downgrade"


class DowngradeNotAllowed(Conflict):
    code = "downgrade_not_allowed"


class NoSlots(Conflict):
    code = "no_slots"


class ConsentMissing(MembershipInputError):
    code = "consent_missing"


class AlreadyBound(Conflict):
    code = "already_bound"


class OwnMembership(Conflict):
    """The person to bind holds a membership of their own in force: they have their own discount (and maybe their
    own family card); a family slot is for a relative who has none."""

    code = "own_membership"


class SpouseBound(Conflict):
    """A family card has one spouse: a second one is refused until the first is unbound."""

    code = "spouse_bound"


class NotBound(Conflict):
    code = "not_bound"


class AlreadyLinked(Conflict):
    code = "already_linked"


class NoConsent(Conflict):
    code = "no_consent"


class BenefitNotInTier(MembershipInputError):
    code = "benefit_not_in_tier"


class BenefitNotHidden(MembershipInputError):
    code = "benefit_not_hidden"


class SelfReference(MembershipInputError):
    code = "self_reference"


class RenewalOutOfRange(Conflict):
    """A renewal whose new expiry would pass the year 9999 (a plan of 100 years renewed ahead some 80 times):
    refused, changing nothing, instead of a 500."""

    code = "renewal_out_of_range"


class PeriodOutOfRange(Conflict):
    """A plan saved before durations were bounded holds one no date can reach (100000 months is past the year
    9999): enrolments and renewals in it are refused, naming it (`params["name"]`), until it is corrected."""

    code = "period_out_of_range"

    def __init__(self, message: str, *, name: str, field: str | None = None):
        super().__init__(message, field=field)
        self.params = {"name": name}
