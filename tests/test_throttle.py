"""The brake on guessing the teacher's secret."""

from mnistlab.throttle import GuessThrottle


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_session_is_braked_after_its_wrong_guesses_until_the_window_passes():
    clock = Clock()
    t = GuessThrottle(per_session=3, per_server=100, window=60, clock=clock)
    for _ in range(3):
        assert t.wait("ann") == 0
        t.failed("ann")
        clock.now += 1
    assert t.wait("ann") == 57  # 60 s after the first of the three, which was 3 s ago
    assert t.wait("bob") == 0  # another session is not braked by ann's guesses
    clock.now += 58
    assert t.wait("ann") == 0


def test_new_sessions_cannot_get_round_the_server_wide_limit():
    clock = Clock()
    t = GuessThrottle(per_session=3, per_server=10, window=60, clock=clock)
    for i in range(10):  # a reload per guess: a new session each time
        assert t.wait(f"s{i}") == 0
        t.failed(f"s{i}")
    assert t.wait("s-new") > 0 and t.wait("teacher") > 0
    clock.now += 61
    assert t.wait("teacher") == 0


def test_a_hundred_guesses_take_many_windows():
    clock = Clock()
    t = GuessThrottle(per_session=5, per_server=30, window=60, clock=clock)
    guesses = 0
    while guesses < 100:
        wait = t.wait(f"s{guesses}")  # a fresh session for every guess
        if wait:
            clock.now += wait
            continue
        t.failed(f"s{guesses}")
        guesses += 1
    assert clock.now - 1000.0 >= 3 * 60  # 100 guesses at 30 a minute: at least three minutes
