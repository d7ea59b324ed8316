"""Typed loyalty errors with stable codes. Every refused write changes nothing (services are atomic and
check before they write; a database refusal rolls the whole transaction back)."""

from smileloop.core.errors import Conflict, DomainError
from smileloop.ledger.services import InsufficientBalance


class LoyaltyInputError(DomainError):
    """Input that is wrong for the current state of the programme (422, with the field named)."""

    status = 422


class InsufficientPoints(InsufficientBalance):
    code = "insufficient_points"


class InsufficientWallet(InsufficientBalance):
    code = "insufficient_balance"


class OutOfStock(Conflict):
    code = "out_of_stock"


class RuleNotFound(LoyaltyInputError):
    code = "unknown_rule"


class ConsentMissing(LoyaltyInputError):
    code = "consent_missing"


class NotFamily(LoyaltyInputError):
    code = "not_family"


class ClawbackExceedsRefund(LoyaltyInputError):
    """A package cancellation would give back less money than the points its bill earned and the holder already
    spent are worth (the clawback policy of a checkout refund): refused, nothing changed."""

    code = "clawback_exceeds_refund"


class PrincipalSpent(Conflict):
    """The top-up's principal is no longer in the wallet (spent or transferred): it cannot be refunded."""

    code = "principal_spent"


class BonusSpent(Conflict):
    code = "bonus_spent"


class NoEntitlementLeft(Conflict):
    code = "no_entitlement"


class AgeLimit(LoyaltyInputError):
    code = "age_limit"


class NotCovered(LoyaltyInputError):
    code = "not_covered"


class AlreadyReversed(Conflict):
    code = "already_reversed"


class PackageNotActive(Conflict):
    """The purchase is cancelled already, or its period ended: there is nothing left to cancel."""

    code = "package_not_active"


class BonusRuleInvalid(Conflict):
    """The top-up bonus rule a top-up reaches gives more than the minimum top-up it rewards (saved before the save
    refused that, or written around it): the top-up is refused, naming the rule (`params`), until staff correct or
    deactivate it. Paying it would give away more stored value than was paid in; skipping it would silently pay
    the patient less than the rule they were told about."""

    code = "bonus_rule_invalid"

    def __init__(self, message: str, *, name: str, minimum: str, bonus: str):
        super().__init__(message, field="amount_fen")
        self.params = {"name": name, "minimum": minimum, "bonus": bonus}


class PeriodOutOfRange(Conflict):
    """A rule or package saved before periods were bounded holds one no date can reach (100000 months is past the
    year 9999): whatever would use it is refused, naming it (`params["name"]`), until it is corrected."""

    code = "period_out_of_range"

    def __init__(self, message: str, *, name: str, field: str | None = None):
        super().__init__(message, field=field)
        self.params = {"name": name}
