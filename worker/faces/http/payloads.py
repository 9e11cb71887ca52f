"""The webhook bodies Alertmanager and Grafana post, as validated models.

Field names stay as the senders spell them (``groupKey``, ``generatorURL``) through
aliases, so a body dumped with ``by_alias=True`` is what a route template author
reads in the sender's documentation. Validation is strict on types (a number is
not a string, a status is one of two words) and lenient where the senders are:
unknown fields are ignored, so a newer sender version keeps working, and
optional fields are defaulted. Timestamps stay the strings that were sent: they
are checked to be RFC 3339, and the idempotency key hashes them unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

Status = Literal["firing", "resolved"]


def _none_as_empty(value: Any) -> Any:
    # Go marshals a nil map as null; both senders build these maps from Go structs.
    return {} if value is None else value


def _rfc3339(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("not an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:
        raise ValueError("an RFC 3339 timestamp needs a time zone offset")
    return value


LabelSet = Annotated[dict[str, str], BeforeValidator(_none_as_empty)]
Values = Annotated[dict[str, float], BeforeValidator(_none_as_empty)]
Timestamp = Annotated[str, AfterValidator(_rfc3339)]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")


class AlertmanagerAlert(_Model):
    """One alert of an Alertmanager notification group."""

    status: Status
    labels: LabelSet
    annotations: LabelSet = Field(default_factory=dict)
    starts_at: Timestamp | None = Field(default=None, alias="startsAt")
    # Alertmanager sends Go's zero time, 0001-01-01T00:00:00Z, for an alert still firing.
    ends_at: Timestamp | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = ""


class AlertmanagerPayload(_Model):
    """The body of an Alertmanager ``webhook_config`` notification (version 4)."""

    version: str = "4"
    group_key: str = Field(default="", alias="groupKey")
    # Alerts left out because of the webhook's ``max_alerts``.
    truncated_alerts: int = Field(default=0, ge=0, alias="truncatedAlerts")
    status: Status
    receiver: str = ""
    group_labels: LabelSet = Field(default_factory=dict, alias="groupLabels")
    common_labels: LabelSet = Field(default_factory=dict, alias="commonLabels")
    common_annotations: LabelSet = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    alerts: list[AlertmanagerAlert]


class GrafanaAlert(AlertmanagerAlert):
    """One alert of a Grafana notification: Alertmanager's fields and Grafana's links."""

    silence_url: str = Field(default="", alias="silenceURL")
    dashboard_url: str = Field(default="", alias="dashboardURL")
    panel_url: str = Field(default="", alias="panelURL")
    image_url: str = Field(default="", alias="imageURL")
    # The query results that made the rule fire, by reference id ("B": 44.2).
    values: Values = Field(default_factory=dict)
    value_string: str = Field(default="", alias="valueString")


class GrafanaPayload(_Model):
    """The body of a Grafana unified alerting webhook contact point (version 1)."""

    receiver: str = ""
    status: Status
    org_id: int = Field(default=0, alias="orgId")
    alerts: list[GrafanaAlert]
    group_labels: LabelSet = Field(default_factory=dict, alias="groupLabels")
    common_labels: LabelSet = Field(default_factory=dict, alias="commonLabels")
    common_annotations: LabelSet = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    version: str = "1"
    group_key: str = Field(default="", alias="groupKey")
    truncated_alerts: int = Field(default=0, ge=0, alias="truncatedAlerts")
    # Grafana's own rendering of its title and message templates.
    title: str = ""
    state: str = ""
    message: str = ""
