"""Alert e-mails: text and HTML parts, the trend chart inline, in the recipient's language.

Headers are built with the standard library's default policy, which encodes
non-ASCII subjects and display names (RFC 2047) so that Chinese names
arrive intact.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping, Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from urllib.parse import quote
from zoneinfo import ZoneInfo

from services.sentiment.models import SentimentAlert, SentimentItem
from shared.i18n import translate
from shared.settings import AlertRecipient

__all__ = ["AlertEmailContent", "compose_alert_email"]

_RULE_TITLES = {
    "negative_share_surge": "Negative share surge",
    "volume_spike": "Volume spike",
    "score_drop": "Score drop",
}


class AlertEmailContent:
    """The alerts, items and chart of one entity's group notification."""

    def __init__(
        self,
        *,
        entity: str,
        entity_name: str,
        firing: Sequence[SentimentAlert],
        resolved: Sequence[SentimentAlert],
        items: Sequence[SentimentItem],
        chart_png: bytes,
        rule_kinds: Mapping[str, str],
        console_url: str,
    ) -> None:
        self.entity = entity
        self.entity_name = entity_name
        self.firing = list(firing)
        self.resolved = list(resolved)
        self.items = list(items)
        self.chart_png = chart_png
        self.rule_kinds = rule_kinds
        self.console_url = console_url.rstrip("/")

    @property
    def entity_url(self) -> str:
        """Link to the entity's page in the console."""
        return f"{self.console_url}/sentiment/entities/{quote(self.entity, safe='')}"

    @property
    def alerts_url(self) -> str:
        """Link to the console's alert list."""
        return f"{self.console_url}/sentiment/alerts"


def _subject(content: AlertEmailContent, language: str) -> str:
    values = {"name": content.entity_name, "entity": content.entity}
    if content.firing:
        severity = (
            "critical" if any(a.severity == "critical" for a in content.firing) else "warning"
        )
        values["severity"] = translate(severity, language)
        return translate(
            "[%(severity)s] Sentiment alert: %(name)s (%(entity)s)", language, **values
        )
    return translate("Resolved: sentiment alert for %(name)s (%(entity)s)", language, **values)


def _format_time(value: dt.datetime | None, zone: ZoneInfo) -> str:
    if value is None:
        return "-"
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def _alert_lines(
    content: AlertEmailContent, language: str, zone: ZoneInfo
) -> list[tuple[str, str]]:
    lines = []
    for heading, alerts in (("Firing", content.firing), ("Resolved", content.resolved)):
        for alert in alerts:
            title = translate(
                _RULE_TITLES.get(content.rule_kinds.get(alert.rule, ""), alert.rule), language
            )
            details = alert.details or {}
            text = translate(
                "%(state)s %(title)s (%(rule)s): value %(value).3f, baseline %(mean).3f "
                "± %(spread).3f, %(volume)s mentions, since %(since)s",
                language,
                state=translate(heading, language),
                title=title,
                rule=alert.rule,
                value=alert.value,
                mean=details.get("baseline_mean") or 0.0,
                spread=details.get("baseline_spread") or 0.0,
                volume=details.get("volume", "?"),
                since=_format_time(alert.fired_at or alert.started_at, zone),
            )
            lines.append((heading, text))
    return lines


def _item_lines(content: AlertEmailContent, zone: ZoneInfo) -> list[str]:
    return [
        f"{item.score:+.2f}  {_format_time(item.published_at, zone)}  {item.text[:280]}"
        for item in content.items
    ]


def compose_alert_email(
    content: AlertEmailContent, *, recipient: AlertRecipient, sender: str, timezone: str = "UTC"
) -> EmailMessage:
    """Build one recipient's alert e-mail.

    Args:
        content: The alerts, items and chart to report.
        recipient: The address, display name and language.
        sender: The From value, ``Name <address>`` or a bare address.
        timezone: IANA zone for the times in the text.

    Returns:
        A message with a Message-ID, text and HTML parts, the chart inline.
    """
    language = recipient.language
    zone = ZoneInfo(timezone)
    sender_name, sender_address = parseaddr(sender)
    message = EmailMessage()
    message["Subject"] = _subject(content, language)
    message["From"] = Address(display_name=sender_name, addr_spec=sender_address)
    message["To"] = Address(display_name=recipient.name, addr_spec=recipient.address)
    message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    domain = sender_address.rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    alerts = _alert_lines(content, language, zone)
    items = _item_lines(content, zone)
    message.set_content(_text_body(content, language, alerts, items))
    chart_cid = make_msgid(domain=domain)
    message.add_alternative(_html_body(content, language, alerts, chart_cid), subtype="html")
    html_part = message.get_payload()[1]  # type: ignore[index]
    assert isinstance(html_part, EmailMessage)
    html_part.add_related(
        content.chart_png,
        maintype="image",
        subtype="png",
        cid=chart_cid,
        filename=f"{content.entity}-trend.png",
        disposition="inline",
    )
    return message


def _text_body(
    content: AlertEmailContent, language: str, alerts: list[tuple[str, str]], items: list[str]
) -> str:
    lines = [
        translate(
            "Entity: %(name)s (%(entity)s)",
            language,
            name=content.entity_name,
            entity=content.entity,
        ),
        "",
        *[text for _heading, text in alerts],
        "",
    ]
    if items:
        lines += [translate("Most negative items (score, published, text):", language), *items, ""]
    lines += [
        translate("Entity page: %(url)s", language, url=content.entity_url),
        translate("All alerts: %(url)s", language, url=content.alerts_url),
    ]
    return "\n".join(lines) + "\n"


def _html_body(
    content: AlertEmailContent, language: str, alerts: list[tuple[str, str]], chart_cid: str
) -> str:
    escape = html.escape
    alert_rows = "".join(f"<li>{escape(text)}</li>" for _heading, text in alerts)
    item_rows = "".join(
        f"<tr><td>{item.score:+.2f}</td><td>{escape(item.text[:280])}</td></tr>"
        for item in content.items
    )
    items_block = (
        f"<h3>{escape(translate('Most negative items', language))}</h3>"
        f"<table><tr><th>{escape(translate('Score', language))}</th>"
        f"<th>{escape(translate('Text', language))}</th></tr>{item_rows}</table>"
        if content.items
        else ""
    )
    heading = translate(
        "Entity: %(name)s (%(entity)s)", language, name=content.entity_name, entity=content.entity
    )
    entity_link = escape(translate("Open the entity page", language))
    alerts_link = escape(translate("All alerts", language))
    return (
        f"<html><body><h2>{escape(heading)}</h2><ul>{alert_rows}</ul>"
        f'<p><img src="cid:{chart_cid[1:-1]}" alt="{escape(content.entity)} trend"></p>'
        f"{items_block}"
        f'<p><a href="{escape(content.entity_url)}">{entity_link}</a>'
        f' · <a href="{escape(content.alerts_url)}">{alerts_link}</a></p>'
        "</body></html>"
    )
