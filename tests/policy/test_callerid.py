import pytest

from pbxguard.policy.callerid import CallerIDError, CallerIndex, list_pattern, normalise


@pytest.mark.parametrize("raw, region, e164", [
    ("+1 (202) 555-0143", "US", "+12025550143"),
    ("2025550143", "US", "+12025550143"),
    ("020 7946 0958", "GB", "+442079460958"),
    ("+12025550143;verstat=TN-Validation-Passed", "US", "+12025550143"),  # a FreeSWITCH caller ID's URI parameters
    ("anonymous", "US", None), ("", "US", None), ("123", "US", None), ("not a number", "US", None),
])
def test_normalise(raw, region, e164):
    assert normalise(raw, region) == e164


def test_list_patterns():
    assert list_pattern("(202) 555-0143") == "+12025550143"
    assert list_pattern("+1202*") == "+1202*"
    for bad in ("12345", "1202*", "+*", "+12a*"):
        with pytest.raises(CallerIDError):
            list_pattern(bad)


def test_lists_and_rates():
    index = CallerIndex("US")
    lists = [("allow", "+1202*", ""), ("deny", "+12025550143", "")]
    assert index.classify("2025550143", lists, now=0.0).listed == "deny"  # deny wins over an allowed prefix
    assert index.classify("2025550199", lists, now=0.0).listed == "allow"
    assert index.classify("anonymous", lists, now=0.0).anonymous
    for t in range(10):
        caller = index.classify("+13125550100", [], now=float(t))
    assert caller.calls_last_minute == 10
    assert index.classify("+13125550100", [], now=100.0).calls_last_minute == 1
    assert caller.masked() == "+131*****100" and "5550" not in caller.masked()


def test_spoofed_numbers_do_not_grow_the_rate_table():
    index = CallerIndex("US", max_tracked=1000)
    index.classify("+12025550100", [], now=0.0)
    index.classify("+12025550100", [], now=1.0)
    for k in range(20_000):  # one call each from 20,000 spoofed numbers within a second
        index.classify(f"+1202{k:07d}", [], now=1.0 + k / 20_000)
    assert len(index.recent) <= 1000
    assert index.classify("+12025550143", [], now=2.0).calls_last_minute == 1
