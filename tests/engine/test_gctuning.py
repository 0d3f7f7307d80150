"""The collector is tuned for a run and given back as it was, nested or not."""

import gc

from attentive_sync.engine.gctuning import YOUNG_THRESHOLD, tuned_gc


def test_thresholds_and_freeze_are_restored_after_nested_runs():
    before = gc.get_threshold()
    with tuned_gc():
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        assert gc.get_freeze_count() > 0
        with tuned_gc():
            assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD  # the outer run is still going
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_restored_when_the_run_fails():
    before = gc.get_threshold()
    try:
        with tuned_gc():
            raise RuntimeError("run failed")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
