from __future__ import annotations

from log_server.core.sequencer import Sequencer


def test_numbers_are_consecutive_and_continue_from_the_last_issued() -> None:
    sequencer = Sequencer(last_issued=41)
    assert list(sequencer.take(3)) == [42, 43, 44]
    assert list(sequencer.take(1)) == [45]
    assert sequencer.take(0) == range(46, 46)
    assert sequencer.last_issued == 45
