"""The short versions of the lean-process benchmarks (README, "Speed"): they run and measure what they name."""

from pbxguard import bench


def test_the_processes_benchmark_finds_every_process_of_an_idle_daemon():
    result = bench.run_processes(settle_s=0.5)
    parts = {"supervisor", "daemon", "esl_server", "resource_tracker"}
    assert {k.removesuffix("_rss_mb") for k in result} == parts | {"total"}
    assert all(result[f"{p}_rss_mb"] > 0 for p in parts)
    assert result["total_rss_mb"] == round(sum(result[f"{p}_rss_mb"] for p in parts), 1)
