from services.ledger.domain.masking import ANONYMOUS_LABEL, shown_name


def test_names_are_shown_only_as_the_donor_consented() -> None:
    assert shown_name("named", "王小明") == "王小明"
    assert shown_name("masked", "王小明") == "王**"
    assert shown_name("anonymous", "王小明") == ANONYMOUS_LABEL
    assert shown_name("excluded", "王小明") is None
    assert shown_name("masked", None) == ANONYMOUS_LABEL
