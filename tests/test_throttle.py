"""The brake on guessing the teacher's secret."""

from mnistlab.throttle import GuessThrottle


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_session_is_braked_after_its_wrong_guesses_until_the_window_passes():
    clock = Clock()
    t = GuessThrottle(per_session=3, per_client=100, per_server=100, window=60, clock=clock)
    for _ in range(3):
        assert t.wait("ann", "10.0.0.2") == 0
        t.failed("ann", "10.0.0.2")
        clock.now += 1
    assert t.wait("ann", "10.0.0.2") == 57  # 60 s after the first of the three, which was 3 s ago
    assert t.wait("bob", "10.0.0.3") == 0  # another session is not braked by ann's guesses
    clock.now += 58
    assert t.wait("ann", "10.0.0.2") == 0


def test_reloading_for_a_new_session_does_not_get_round_the_clients_limit():
    clock = Clock()
    t = GuessThrottle(per_session=3, per_client=10, per_server=100, window=60, clock=clock)
    for i in range(10):  # a reload per guess: a new session each time, the same machine
        assert t.wait(f"s{i}", "10.0.0.9") == 0
        t.failed(f"s{i}", "10.0.0.9")
    assert t.wait("s-new", "10.0.0.9") > 0
    assert t.wait("teacher", "10.0.0.1") == 0  # the teacher's machine is not held back
    clock.now += 61
    assert t.wait("s-new", "10.0.0.9") == 0


def test_many_clients_guessing_together_meet_the_server_limit_but_the_teacher_does_not():
    clock = Clock()
    t = GuessThrottle(per_session=5, per_client=10, per_server=30, window=60, clock=clock)
    for i in range(30):
        t.failed(f"s{i}", f"10.0.1.{i}")
    assert t.wait("s-other", "10.0.1.3") > 0  # a client that has guessed wrong waits for the whole class's count
    assert t.wait("teacher", "10.0.0.1") == 0  # a client with no wrong guess is never locked out


def test_a_hundred_guesses_from_one_machine_take_many_windows():
    clock = Clock()
    t = GuessThrottle(per_session=5, per_client=10, per_server=30, window=60, clock=clock)
    guesses = 0
    while guesses < 100:
        wait = t.wait(f"s{guesses}", "10.0.0.9")  # a fresh session for every guess
        if wait:
            clock.now += wait
            continue
        t.failed(f"s{guesses}", "10.0.0.9")
        guesses += 1
    assert clock.now - 1000.0 >= 9 * 60  # 100 guesses at 10 a minute: at least nine minutes
