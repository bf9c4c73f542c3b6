"""The short versions of the lean-process benchmarks (README, "Speed"): they run and measure what they name."""

import os

import pytest

from pbxguard import bench


def test_the_processes_benchmark_finds_every_process_of_an_idle_daemon():
    result = bench.run_processes(settle_s=0.5)
    workers = {f"worker_{i}" for i in range(len(os.sched_getaffinity(0)))}  # one per core by default
    parts = {"supervisor", "esl_server", "resource_tracker"} | workers
    assert {k.removesuffix("_rss_mb") for k in result} == parts | {"total"}
    assert all(result[f"{p}_rss_mb"] > 0 for p in parts)
    assert result["total_rss_mb"] == round(sum(result[f"{p}_rss_mb"] for p in parts), 1)


def test_the_workers_channel_benchmark_screens_every_call_through_pbxguard_serve():
    from pbxguard.screener.screener import Screener

    result = bench.run_channels_served(Screener(), channels=4, seconds=3.0, workers=2)
    assert result["workers"] == 2 and result["calls"] >= 4
    assert (result["failed_calls"], result["misrouted_or_wrong_verdicts"], result["calls_missing_audio"]) == (0, 0, 0)
    assert result["workers_cpu_ms_per_call"] > 0 and result["workers_peak_rss_mb"] > 0


@pytest.mark.parametrize("workers", [0, 2])
def test_the_freeswitch_load_benchmark_screens_every_call_through_the_real_freeswitch(workers):
    from pbxguard.screener.screener import Screener

    result = bench.run_freeswitch(Screener(), channels=3, seconds=3.0, workers=workers)
    assert result["daemon"] == ("pbxguard serve, 2 workers" if workers else "in this process")
    assert result["calls"] >= 4 and (result["lost_verdicts"], result["wrong_verdicts"]) == (0, 0)
    assert result["hold_p50_ms"] is not None
    assert result["workers_replaced"] == 0 and not result["esl_process_replaced"]
    assert result["esl_cpu_ms_per_call"] > 0 and result["daemon_cpu_ms_per_call"] > 0
