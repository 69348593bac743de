"""IEEE 802.1AS Follow_Up information TLV (802.1AS-2020 §11.4.4.3), as an organization extension.

organizationId 00-80-C2, organizationSubType 1, then cumulativeScaledRateOffset (Int32:
(rateRatio − 1) × 2^41), gmTimeBaseIndicator (UInt16), lastGmPhaseChange (ScaledNs, 12 octets)
and scaledLastGmFreqChange (Int32): 28 octets of value.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction

from netclock.ptp.wire.tlv import OrganizationExtensionTlv, Tlv
from netclock.ptp.wire.types import ParseError

IEEE_802_1_OUI = b"\x00\x80\xc2"
FOLLOW_UP_INFO_SUBTYPE = b"\x00\x00\x01"
_BODY = struct.Struct("!iH12si")
RATE_OFFSET_SCALE = 1 << 41


@dataclass(frozen=True, slots=True)
class FollowUpInfo:
    cumulative_scaled_rate_offset: int = 0
    gm_time_base_indicator: int = 0
    last_gm_phase_change: bytes = b"\0" * 12
    scaled_last_gm_freq_change: int = 0

    @classmethod
    def from_rate_ratio(cls, num: int, den: int, **kw: int) -> FollowUpInfo:
        """cumulativeScaledRateOffset for the rate ratio num/den, clamped to an Int32."""
        off = (Fraction(num, den) - 1) * RATE_OFFSET_SCALE
        v = max(min(round(off), 0x7FFFFFFF), -0x80000000)
        return cls(v, **kw)  # type: ignore[arg-type]

    @property
    def rate_ratio(self) -> Fraction:
        return 1 + Fraction(self.cumulative_scaled_rate_offset, RATE_OFFSET_SCALE)

    def tlv(self) -> OrganizationExtensionTlv:
        return OrganizationExtensionTlv(
            IEEE_802_1_OUI, FOLLOW_UP_INFO_SUBTYPE,
            _BODY.pack(self.cumulative_scaled_rate_offset, self.gm_time_base_indicator,
                       self.last_gm_phase_change, self.scaled_last_gm_freq_change),
        )

    @classmethod
    def from_tlvs(cls, tlvs: tuple[Tlv, ...]) -> FollowUpInfo | None:
        """The first Follow_Up information TLV among ``tlvs`` (None if absent)."""
        for t in tlvs:
            if (isinstance(t, OrganizationExtensionTlv) and t.organization_id == IEEE_802_1_OUI
                    and t.organization_sub_type == FOLLOW_UP_INFO_SUBTYPE):
                if len(t.data) < _BODY.size:
                    raise ParseError("Follow_Up information TLV shorter than 28 octets")
                a, b, c, d = _BODY.unpack_from(t.data)
                return cls(a, b, c, d)
        return None
