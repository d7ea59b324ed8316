"""A staff member's scope: which chain and clinics they may see, and what they may do.

Every selector over patient data takes a Scope as its first argument, so no read path can
forget the clinic boundary (the IDOR rule in STYLE.md).
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Scope:
    user_id: int | None
    staff_id: int | None
    chain_id: int
    clinic_ids: frozenset[int] | None  # None = every clinic of the chain (chain roles)
    permissions: frozenset[str] = field(default_factory=frozenset)
    role: str = ""

    @property
    def is_chain_wide(self) -> bool:
        return self.clinic_ids is None

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def allows_clinic(self, clinic_id: int | None) -> bool:
        if self.clinic_ids is None:
            return True
        return clinic_id is not None and clinic_id in self.clinic_ids
