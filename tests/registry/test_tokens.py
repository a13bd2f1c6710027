from atoll.registry import tokens


def test_secrets_are_long_unique_and_never_look_like_a_command_line_option():
    drawn = [tokens.new_secret() for _ in range(3000)]
    assert len(set(drawn)) == len(drawn)
    assert all(len(s) == 43 for s in drawn)
    # With 3000 draws a leading '-' would appear ~47 times if it were not redrawn.
    assert not any(s.startswith("-") for s in drawn)


def test_hash_and_match():
    s = tokens.new_secret()
    h = tokens.hash_secret(s)
    assert tokens.matches(s, h)
    assert not tokens.matches(s + "x", h)
    assert not tokens.matches(s, None)
