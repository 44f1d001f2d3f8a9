"""Tests of PII masking, unmasking, the encrypted vault and the log filter."""

from __future__ import annotations

import logging
import os
import random
import stat
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

import services.support.privacy
from services.support.privacy import (
    PII_KEY_VARIABLE,
    MaskedText,
    PiiEntity,
    PiiRedactingFilter,
    PiiVault,
    mask_pii,
    unmask,
)
from shared.errors import ConfigurationError, DataError
from shared.settings import get_settings

PRIVACY_LOGGER = "services.support.privacy"


def test_public_names_of_privacy() -> None:
    """The module exports exactly its documented names."""
    assert sorted(services.support.privacy.__all__) == [
        "MaskedText",
        "PII_KEY_VARIABLE",
        "PiiEntity",
        "PiiKind",
        "PiiRedactingFilter",
        "PiiVault",
        "mask_pii",
        "unmask",
    ]


def _masked_values(text: str) -> list[tuple[str, str]]:
    """Return (kind, value) for each entity that mask_pii finds in `text`."""
    return [(entity.kind, entity.value) for entity in mask_pii(text).entities]


# --- Each kind ------------------------------------------------------------------------

EMAIL_CASES = [
    ("Please reply to zhang.san@example.com today", "zhang.san@example.com"),
    ("请发邮件到zhang.san@example.com.cn谢谢", "zhang.san@example.com.cn"),
    ("Contact: Li+support@mail.example.org.", "Li+support@mail.example.org"),
    ("我的邮箱是13812345678@163.com，手机同号", "13812345678@163.com"),
    ("full-width ｌｉ＠ｅｘａｍｐｌｅ．ｃｏｍ here", "ｌｉ＠ｅｘａｍｐｌｅ．ｃｏｍ"),
    ("<mailto:o'brien@example.ie>", "o'brien@example.ie"),
    ("quoted 'wang@example.com' here", "wang@example.com"),
    ("邮箱 张三@例子.中国 谢谢", "张三@例子.中国"),
    ("write to josé.müller@exämple.de.", "josé.müller@exämple.de"),
    ("почта: иван@пример.рф", "иван@пример.рф"),
]


@pytest.mark.parametrize(("text", "value"), EMAIL_CASES)
def test_mask_pii_masks_email(text: str, value: str) -> None:
    """E-mail addresses are masked in English, Chinese and full-width text."""
    masked = mask_pii(text)

    assert _masked_values(text) == [("EMAIL", value)]
    assert value not in masked.text
    assert "[EMAIL_1]" in masked.text


PHONE_CASES = [
    ("我的电话是13812345678谢谢", "13812345678"),
    ("手机：138 1234 5678，晚上打", "138 1234 5678"),
    ("手机138-1234-5678", "138-1234-5678"),
    ("请拨+86 139 1234 5678联系", "+86 139 1234 5678"),
    ("请拨+8613912345678", "+8613912345678"),
    ("号码0086-150-1234-5678", "0086-150-1234-5678"),
    ("座机010-12345678转人工", "010-12345678"),
    ("座机(0755)8765432", "(0755)8765432"),
    ("电话１３８１２３４５６７８", "１３８１２３４５６７８"),
    ("Call +1 (415) 555-2671 now", "+1 (415) 555-2671"),
    ("Call +14155552671.", "+14155552671"),
    ("Call (415) 555-2671 after 5pm", "(415) 555-2671"),
    ("Call 415.555.2671", "415.555.2671"),
    ("Call 1-800-555-0199 for help", "1-800-555-0199"),
    ("London office +44 20 7946 0958", "+44 20 7946 0958"),
    ("UK mobile 07700 900123", "07700 900123"),
    ("Paris 01 23 45 67 89", "01 23 45 67 89"),
    ("tel+8613812345678", "+8613812345678"),
    ("(call 13812345678)", "13812345678"),
    ("Tel13812345678 please", "13812345678"),
    ("TEL:13812345678", "13812345678"),
    ("WeChat13912345678", "13912345678"),
    ("Phone+44 20 7946 0958", "+44 20 7946 0958"),
]


@pytest.mark.parametrize(("text", "value"), PHONE_CASES)
def test_mask_pii_masks_phone(text: str, value: str) -> None:
    """International, Chinese mobile and landline, and national numbers are masked."""
    masked = mask_pii(text)

    assert _masked_values(text) == [("PHONE", value)]
    assert masked.text == text.replace(value, "[PHONE_1]")


def test_mask_pii_stops_phone_before_unrelated_number() -> None:
    """A number after a phone number stays out of it when the two together are too long."""
    assert _masked_values("+44 20 7946 0958 1234 is the ref") == [("PHONE", "+44 20 7946 0958")]
    assert _masked_values("电话：138 1234 5678 订单 2024") == [("PHONE", "138 1234 5678")]


CARD_CASES = [
    ("card 4111 1111 1111 1111 exp 12/26", "4111 1111 1111 1111"),
    ("卡号4111-1111-1111-1111谢谢", "4111-1111-1111-1111"),
    ("Mastercard 5555555555554444.", "5555555555554444"),
    ("Amex 3782 822463 10005", "3782 822463 10005"),
    ("银联卡6200000000000005", "6200000000000005"),
    ("new Mastercard 2223 0031 2200 3222", "2223 0031 2200 3222"),
    ("JCB 3530111333300000", "3530111333300000"),
    ("card 4111 1111 1111 1111 23 was declined", "4111 1111 1111 1111"),
    ("card4111111111111111 declined", "4111111111111111"),
    ("VISA4111-1111-1111-1111", "4111-1111-1111-1111"),
]


@pytest.mark.parametrize(("text", "value"), CARD_CASES)
def test_mask_pii_masks_card(text: str, value: str) -> None:
    """Card numbers of 13 to 19 digits that pass the Luhn check are masked."""
    assert _masked_values(text) == [("CARD", value)]


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 please",
        "卡号5555555555554445",
        "ref 1234567812345670",  # passes Luhn, but no card network starts with 1
        "ref 0000000000000000",
    ],
)
def test_mask_pii_keeps_numbers_failing_card_checks(text: str) -> None:
    """A 16-digit number that fails Luhn or has no card-network first digit is left alone."""
    assert mask_pii(text) == MaskedText(text=text, entities=())


IBAN_CASES = [
    ("IBAN: DE89 3704 0044 0532 0130 00 thanks", "DE89 3704 0044 0532 0130 00"),
    ("账号GB82WEST12345698765432谢谢", "GB82WEST12345698765432"),
    ("pay to FR14 2004 1010 0505 0001 3M02 606 OK", "FR14 2004 1010 0505 0001 3M02 606"),
    ("NL91ABNA0417164300.", "NL91ABNA0417164300"),
    ("iban ch93 0076 2011 6238 5295 7", "ch93 0076 2011 6238 5295 7"),
    ("Norway NO93 8601 1117 947 ok", "NO93 8601 1117 947"),
    ("IBAN DE89 3704 0044 0532 0130 00 1234 is the amount", "DE89 3704 0044 0532 0130 00"),
]


@pytest.mark.parametrize(("text", "value"), IBAN_CASES)
def test_mask_pii_masks_iban(text: str, value: str) -> None:
    """IBANs that pass the ISO 13616 mod-97 check are masked, with or without spaces."""
    assert _masked_values(text) == [("IBAN", value)]


@pytest.mark.parametrize(
    "text",
    [
        "IBAN DE89 3704 0044 0532 0130 01",
        "GB82 WEST 1234 5698 7654 33",
        "DE89370400440532013000XYZ",
    ],
)
def test_mask_pii_keeps_invalid_iban(text: str) -> None:
    """A wrong check digit, or an IBAN glued to more letters, is not masked as an IBAN."""
    assert [kind for kind, _ in _masked_values(text)] != ["IBAN"]
    assert "IBAN_" not in mask_pii(text).text


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("身份证号11010519491231002X。", "11010519491231002X"),
        ("ID 44030419900307123x ok", "44030419900307123x"),
        ("身份证 310101 19851231 0450", "310101 19851231 0450"),
        ("born on a leap day 110105200002290013", "110105200002290013"),
        ("ID11010519491231002X", "11010519491231002X"),
    ],
)
def test_mask_pii_masks_chinese_id(text: str, value: str) -> None:
    """18-character Chinese resident ID numbers with a valid check character are masked."""
    assert _masked_values(text) == [("ID_CN", value)]


@pytest.mark.parametrize(
    "text",
    [
        "身份证号110105194912310021",  # wrong check character
        "身份证号110105194902300020",  # valid check character, but 30 February
        "身份证号110105189912310023",  # valid check character, but born before 1900
        "account 911010519491231002X",  # a valid ID inside a longer number
    ],
)
def test_mask_pii_keeps_invalid_chinese_id(text: str) -> None:
    """An ID number with a wrong check character or birth date is not masked."""
    assert mask_pii(text).entities == ()


# --- False positives ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Order ORD-2024-000123 has not arrived",
        "订单号ORD-2024-000123还没发货",
        "invoice INV_2024_0001234567",
        "Ordered on 2024-01-15 and 15/01/2024, or 01.02.2024 10:30",
        "2024年1月15日下单",
        "Total $1,234.56 and ¥12,345,678.00",
        "It costs 1 234 567 dollars",
        "timestamp 20240115123045",
        "server 192.168.1.100 runs version 1.13.2",
        "QQ 12345678 and order 12345678901",
        "rated +1.5% at 10:30:45",
        "tracking SF1234567890123",
        "ref ORD13812345678",
        "hotel13812345678 is a booking code",
        "the card4 slot",
        "",
    ],
)
def test_mask_pii_keeps_non_pii_numbers(text: str) -> None:
    """Order numbers, dates, amounts, times, addresses and versions are not PII."""
    assert mask_pii(text) == MaskedText(text=text, entities=())


# --- Placeholders and offsets ---------------------------------------------------------


def test_mask_pii_numbers_placeholders_per_kind() -> None:
    """Each kind is numbered from 1 in order of appearance."""
    text = "a@example.com 13812345678 b@example.com 010-12345678 4111111111111111"

    masked = mask_pii(text)

    assert masked.text == "[EMAIL_1] [PHONE_1] [EMAIL_2] [PHONE_2] [CARD_1]"


def test_mask_pii_reuses_placeholder_for_repeated_value() -> None:
    """The same value always gets the same placeholder within one text."""
    text = "call 13812345678, or 13912345678, really 13812345678"

    masked = mask_pii(text)

    assert masked.text == "call [PHONE_1], or [PHONE_2], really [PHONE_1]"
    assert [entity.placeholder for entity in masked.entities] == [
        "[PHONE_1]",
        "[PHONE_2]",
        "[PHONE_1]",
    ]


def test_mask_pii_gives_new_placeholder_to_other_spelling() -> None:
    """The same number written another way gets its own placeholder, so unmask is exact."""
    text = "13812345678 or 138-1234-5678"

    masked = mask_pii(text)

    assert masked.text == "[PHONE_1] or [PHONE_2]"
    assert unmask(masked) == text


def test_mask_pii_is_deterministic() -> None:
    """Masking the same text twice gives equal results."""
    text = "邮箱 a@example.com 电话 13812345678 卡 4111111111111111"

    assert mask_pii(text) == mask_pii(text)


def test_mask_pii_skips_placeholder_already_in_text() -> None:
    """A placeholder that the customer typed literally is not reused for real data."""
    text = "template says [PHONE_1] and [EMAIL_2], my number is 13812345678"

    masked = mask_pii(text)

    assert masked.text == "template says [PHONE_1] and [EMAIL_2], my number is [PHONE_2]"
    assert unmask(masked) == text


def test_mask_pii_offsets_point_at_placeholders() -> None:
    """Each entity's offsets select its placeholder in the masked text."""
    text = "邮箱zhang@example.com，电话+86 138 1234 5678，卡号4111 1111 1111 1111。"

    masked = mask_pii(text)

    assert len(masked.entities) == 3
    for entity in masked.entities:
        assert masked.text[entity.start : entity.end] == entity.placeholder


def test_mask_pii_prefers_email_over_phone_inside_it() -> None:
    """A phone number that is an address's local part is masked once, as part of the EMAIL."""
    assert _masked_values("13812345678@qq.com") == [("EMAIL", "13812345678@qq.com")]


def test_mask_pii_rejects_non_str() -> None:
    """mask_pii takes a str only."""
    with pytest.raises(TypeError, match="`text` must be a str"):
        mask_pii(b"13812345678")  # type: ignore[arg-type]


def test_pii_entity_repr_hides_value() -> None:
    """An entity that ends up in a log line does not reveal its value."""
    entity = mask_pii("call 13812345678").entities[0]

    assert "13812345678" not in repr(entity)
    assert "[PHONE_1]" in repr(entity)


# --- Unmasking ------------------------------------------------------------------------

ROUND_TRIP_CASES = [text for text, _ in EMAIL_CASES + PHONE_CASES + CARD_CASES + IBAN_CASES] + [
    "",
    "no personal data at all",
    "Mixed 混合 text: a@example.com，电话13812345678，IBAN DE89370400440532013000。",
    "[EMAIL_1] [PHONE_9] [CARD_1 [IBAN_0] [ID_CN_2]",
    "[PHONE_13812345678]",
    "13812345678[PHONE_1]",
    "a@example.com a@example.com A@example.com",
    "\ud800 lone surrogate next to 13812345678",
    "😀13812345678😀",
]


@pytest.mark.parametrize("text", ROUND_TRIP_CASES)
def test_unmask_restores_original_text(text: str) -> None:
    """unmask(mask_pii(text)) gives back the exact original text."""
    masked = mask_pii(text)

    assert unmask(masked) == text
    assert unmask(masked.text, masked.entities) == text


def test_unmask_restores_placeholders_in_derived_text() -> None:
    """Placeholders copied into a drafted reply are filled in from the entities."""
    masked = mask_pii("I am at 13812345678 and zhang@example.com")
    draft = "We will call [PHONE_1] and confirm by e-mail to [EMAIL_1]. Ignore [PHONE_7]."

    assert unmask(draft, masked.entities) == (
        "We will call 13812345678 and confirm by e-mail to zhang@example.com. Ignore [PHONE_7]."
    )


def test_unmask_uses_given_entities_over_own() -> None:
    """Entities passed explicitly replace the ones stored in the MaskedText."""
    masked = mask_pii("call 13812345678")

    assert unmask(masked, []) == "call [PHONE_1]"


def test_unmask_replaces_in_one_pass() -> None:
    """A restored value that looks like a placeholder is not expanded again."""
    entities = [
        PiiEntity(kind="EMAIL", placeholder="[EMAIL_1]", value="[EMAIL_2]", start=0, end=9),
        PiiEntity(kind="EMAIL", placeholder="[EMAIL_2]", value="a@example.com", start=10, end=19),
    ]

    assert unmask("[EMAIL_1] [EMAIL_2]", entities) == "[EMAIL_2] a@example.com"


def test_unmask_requires_entities_for_str() -> None:
    """A plain str carries no entities, so they must be passed."""
    with pytest.raises(TypeError, match="`entities` is required"):
        unmask("call [PHONE_1]")


def test_unmask_rejects_conflicting_entities() -> None:
    """Two values for one placeholder are an error, and the message shows neither value."""
    first = mask_pii("call 13812345678").entities[0]
    second = mask_pii("call 13912345678").entities[0]

    with pytest.raises(ValueError, match=r"\[PHONE_1\]") as caught:
        unmask("call [PHONE_1]", [first, second])

    assert "13812345678" not in str(caught.value)
    assert "13912345678" not in str(caught.value)


# --- Property-style checks ------------------------------------------------------------

_PII_SAMPLES = [
    "zhang.san@example.com",
    "13812345678",
    "+86 139 1234 5678",
    "010-12345678",
    "+1 (415) 555-2671",
    "4111 1111 1111 1111",
    "6200000000000005",
    "DE89 3704 0044 0532 0130 00",
    "GB82WEST12345698765432",
    "11010519491231002X",
]
_FILLER = [
    "你", "好", "谢", "，", "。", "a", "Z", "7", "0", " ", "-", "+", "(", ")", "[", "]", "@",
    ".", "_", "\n", "[PHONE_1]", "[EMAIL_2]", "１", "＠", "\ud800", "😀", "ORD-2024-", "$1,234.56",
]  # fmt: skip


def test_mask_pii_random_text_round_trips() -> None:
    """On random text, unmask restores the original and offsets match placeholders."""
    generator = random.Random(1234)
    for _ in range(3000):
        pieces = _FILLER + _PII_SAMPLES
        text = "".join(generator.choice(pieces) for _ in range(generator.randrange(40)))

        masked = mask_pii(text)

        assert unmask(masked) == text, text
        for entity in masked.entities:
            assert masked.text[entity.start : entity.end] == entity.placeholder, text


def test_mask_pii_random_text_hides_embedded_pii() -> None:
    """PII set between Chinese characters or spaces never survives masking."""
    generator = random.Random(99)
    separators = ["我", "的", "。", " ", "，", "：", "\n"]
    for _ in range(1000):
        samples = [generator.choice(_PII_SAMPLES) for _ in range(generator.randrange(1, 5))]
        text = generator.choice(separators)
        for sample in samples:
            text += sample + generator.choice(separators)

        masked = mask_pii(text)

        for sample in samples:
            assert sample not in masked.text, text
        assert unmask(masked) == text


# --- Vault ----------------------------------------------------------------------------


def _key_file() -> Path:
    return get_settings().home / "keys" / "pii.key"


def test_vault_round_trips_entities(monkeypatch: pytest.MonkeyPatch) -> None:
    """seal then open gives back equal entities, Chinese values included."""
    monkeypatch.setenv(PII_KEY_VARIABLE, Fernet.generate_key().decode())
    text = "张三 zhang@example.com，电话１３８１２３４５６７８，卡号4111 1111 1111 1111"
    masked = mask_pii(text)
    vault = PiiVault()

    token = vault.seal(masked.entities)

    assert len(masked.entities) == 3
    assert vault.open(token) == list(masked.entities)
    assert unmask(masked.text, vault.open(token)) == text


def test_vault_seals_with_fresh_iv() -> None:
    """Sealing the same entities twice gives different tokens that open to the same list."""
    vault = PiiVault(key=Fernet.generate_key())
    entities = mask_pii("13812345678").entities

    first, second = vault.seal(entities), vault.seal(entities)

    assert first != second
    assert vault.open(first) == vault.open(second) == list(entities)


def test_vault_seals_empty_list() -> None:
    """A ticket without PII can still be sealed and opened."""
    vault = PiiVault(key=Fernet.generate_key())

    assert vault.open(vault.seal([])) == []


def test_vault_uses_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the variable set, tokens open with that key and no key file is written."""
    key = Fernet.generate_key()
    monkeypatch.setenv(PII_KEY_VARIABLE, key.decode())
    entities = mask_pii("a@example.com").entities

    token = PiiVault().seal(entities)

    assert PiiVault(key=key).open(token) == list(entities)
    assert not _key_file().exists()


@pytest.mark.parametrize(
    "value", ["", "not-a-key", "c2hvcnQ=", Fernet.generate_key().decode()[:-2]]
)
def test_vault_rejects_invalid_environment_key(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """An invalid key names the variable and how to generate a key, without echoing the value."""
    monkeypatch.setenv(PII_KEY_VARIABLE, value)

    with pytest.raises(ConfigurationError) as caught:
        PiiVault()

    message = str(caught.value)
    assert PII_KEY_VARIABLE in message
    assert "Fernet.generate_key().decode()" in message
    if value:
        assert value not in message


def test_vault_creates_key_file_with_owner_only_mode() -> None:
    """Without the variable, the key goes to <home>/keys/pii.key with mode 0600."""
    assert not _key_file().exists()

    PiiVault()

    assert _key_file().is_file()
    assert stat.S_IMODE(_key_file().stat().st_mode) == 0o600
    Fernet(_key_file().read_bytes().strip())
    assert [path.name for path in _key_file().parent.iterdir()] == ["pii.key"]


def test_vault_creates_key_file_despite_strict_umask() -> None:
    """The key file is 0600 even when the umask would leave it unreadable."""
    previous = os.umask(0o277)
    try:
        PiiVault()
    finally:
        os.umask(previous)

    assert stat.S_IMODE(_key_file().stat().st_mode) == 0o600


def test_vault_reuses_key_file() -> None:
    """A second vault reads the key file, so it opens the first vault's tokens."""
    entities = mask_pii("13812345678").entities
    token = PiiVault().seal(entities)
    key_before = _key_file().read_bytes()

    assert PiiVault().open(token) == list(entities)
    assert _key_file().read_bytes() == key_before


def test_vault_rejects_invalid_key_file() -> None:
    """A key file without a valid key is a configuration error naming the file."""
    _key_file().parent.mkdir(parents=True)
    _key_file().write_text("garbage\n")
    _key_file().chmod(0o600)

    with pytest.raises(ConfigurationError, match=r"pii\.key"):
        PiiVault()


def test_vault_warns_about_readable_key_file(caplog: pytest.LogCaptureFixture) -> None:
    """A key file that other users can read is logged as a warning with the fix."""
    _key_file().parent.mkdir(parents=True)
    _key_file().write_bytes(Fernet.generate_key())
    _key_file().chmod(0o644)

    with caplog.at_level(logging.WARNING, logger=PRIVACY_LOGGER):
        PiiVault()

    assert "chmod 600" in caplog.text


def test_vault_reports_changed_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A token sealed under another key raises ConfigurationError saying the key changed."""
    token = PiiVault(key=Fernet.generate_key()).seal(mask_pii("13812345678").entities)
    monkeypatch.setenv(PII_KEY_VARIABLE, Fernet.generate_key().decode())

    with pytest.raises(ConfigurationError, match="key changed") as caught:
        PiiVault().open(token)

    assert PII_KEY_VARIABLE in str(caught.value)


@pytest.mark.parametrize("token", ["", "not a token", "gAAAAA", "令牌", "A" * 200])
def test_vault_rejects_malformed_token(token: str) -> None:
    """A string that is not a Fernet token is a data error, not a key problem."""
    vault = PiiVault(key=Fernet.generate_key())

    with pytest.raises(DataError, match="not a sealed PII token"):
        vault.open(token)


def test_vault_rejects_token_of_wrong_type() -> None:
    """Tokens are str, and bytes are rejected with a TypeError."""
    vault = PiiVault(key=Fernet.generate_key())

    with pytest.raises(TypeError, match="`token` must be a str"):
        vault.open(vault.seal([]).encode())  # type: ignore[arg-type]


def test_vault_rejects_foreign_plaintext() -> None:
    """A valid token that does not contain entities is a data error."""
    key = Fernet.generate_key()
    token = Fernet(key).encrypt(b'{"not": "a list"}').decode()

    with pytest.raises(DataError, match="does not contain a list of entities"):
        PiiVault(key=key).open(token)


# --- Log filter -----------------------------------------------------------------------


def _make_record(message: str, args: tuple[object, ...] = ()) -> logging.LogRecord:
    return logging.LogRecord(
        name="services.support.test",
        level=logging.INFO,
        pathname=__file__,
        lineno=1,
        msg=message,
        args=args,
        exc_info=None,
    )


def test_redacting_filter_masks_message_and_args() -> None:
    """PII in the message template or its arguments is masked; the record is kept."""
    record = _make_record("ticket from %s, phone %s, id %d", ("a@example.com", "13812345678", 7))

    kept = PiiRedactingFilter().filter(record)

    assert kept is True
    assert record.getMessage() == "ticket from [EMAIL_1], phone [PHONE_1], id 7"


def test_redacting_filter_masks_non_str_args() -> None:
    """A card number passed as an int is masked too."""
    record = _make_record("charged %d", (4111111111111111,))

    PiiRedactingFilter().filter(record)

    assert record.getMessage() == "charged [CARD_1]"


def test_redacting_filter_leaves_clean_record_alone() -> None:
    """A record without PII keeps its template and arguments."""
    record = _make_record("ticket stored ticket_id=%s", (42,))

    PiiRedactingFilter().filter(record)

    assert record.msg == "ticket stored ticket_id=%s"
    assert record.args == (42,)


def test_redacting_filter_masks_exception_text() -> None:
    """PII in an exception message is masked in the formatted traceback."""
    try:
        raise ValueError("bad address zhang@example.com")
    except ValueError:
        record = logging.LogRecord(
            "services.support.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )

    PiiRedactingFilter().filter(record)

    assert record.exc_text is not None
    assert "zhang@example.com" not in record.exc_text
    assert "[EMAIL_1]" in record.exc_text


def test_redacting_filter_survives_bad_format_args() -> None:
    """Arguments that do not fit the template never make logging raise."""
    record = _make_record("call %s and %s 13812345678", ("only one",))

    assert PiiRedactingFilter().filter(record) is True
    assert record.msg == "call %s and %s [PHONE_1]"


def test_redacting_filter_masks_handler_output(caplog: pytest.LogCaptureFixture) -> None:
    """Attached to a handler, the filter masks what the handler writes."""
    redacting = PiiRedactingFilter()
    caplog.handler.addFilter(redacting)
    try:
        logging.getLogger("services.support.test").warning("reply to %s", "李雷 13812345678")
    finally:
        caplog.handler.removeFilter(redacting)

    assert "13812345678" not in caplog.text
    assert "李雷 [PHONE_1]" in caplog.text
