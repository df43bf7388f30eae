"""Issue 11 end to end: the same network and the same spy budget under flood, diffusion and
dandelion (three runs in one test; privacy_experiment.py), on real loopback sockets with 100 honest
nodes. The spy's first-spy precision must order flood >= diffusion >> dandelion (">>": at least
twice), and under dandelion its recall must sit within ± 0.05 of its share of nodes (Fanti et al.
2018). The table and plot of the trade-off are written as the report would (harness/report/privacy.py).

Seeds: PRIVACY_SEEDS (comma-separated, default "1,2,3"); each seed is three runs of 400
transactions (about 2-3 minutes per seed here when the machine is quiet, up to ten times that under
load: every wait has a deadline, nothing is timed). Every seed must order the policies on its own;
the recall claim is judged on all seeds together (1,200 dandelion transactions: a standard
deviation of about 0.009 instead of 0.015 for one seed), since one seed's recall is a sample whose
two-sigma band already spans most of the ± 0.05 tolerance.
PRIVACY_TABLE_OUT=FILE appends each seed's table to FILE. docs/results.md holds the numbers.

Why recall once came out 0.16 against p = 0.099: Dandelion++ sends all of a node's own transactions
through one relay per epoch, so the earlier version (2 transactions per node inside one 60 s epoch)
measured 100 draws, not 200: recall's standard deviation was sqrt(p(1-p)/100) ≈ 0.03, and 0.16 is
within two of them. privacy_experiment.py now gives every transaction of a node a fresh epoch
(1 s epochs, 400 transactions): about 400 draws, a standard deviation of 0.015.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.report.privacy import plot_privacy, privacy_table

from tests.harness.privacy_experiment import describe, run_policy
from tests.node.conftest import LoopThread

pytestmark = pytest.mark.slow
SEEDS = [int(s) for s in os.environ.get("PRIVACY_SEEDS", "1,2,3").split(",")]
POLICIES = ("flood", "diffusion", "dandelion")
# The three 100-node runs need an interpreter of their own: inside a long pytest process, after the
# other suites, they failed to form their graph within 120 s (twice in full-suite runs), while the
# same test alone passed every time. The collected test therefore re-runs itself in a fresh pytest.
INNER = "HARNESS_PRIVACY_E2E_INNER"
ROOT = Path(__file__).resolve().parents[2]


# Three 100-node runs take about 2-3 minutes on this 2-core machine when it is quiet; one diffusion
# run took 9 minutes and a dandelion run 19 while other suites loaded it to 100+: the cap is for that.
RESULTS = "HARNESS_PRIVACY_E2E_RESULTS"  # the inner run appends its dandelion first-spy score here


@pytest.mark.timeout(3600 * len(SEEDS))
def test_policies_order_the_spys_success(tmp_path):
    if not os.environ.get(INNER):
        results = tmp_path / "dandelion.jsonl"
        for seed in SEEDS:
            test_id = f"{Path(__file__).relative_to(ROOT)}::test_policies_order_the_spys_success"
            done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", test_id],
                                  cwd=ROOT, env={**os.environ, INNER: "1", "PRIVACY_SEEDS": str(seed),
                                                 RESULTS: str(results)},
                                  capture_output=True, text=True, timeout=3580)
            print(done.stdout[-4000:])
            assert done.returncode == 0, f"seed {seed}:\n" + (done.stdout + done.stderr)[-6000:]
        scores = [json.loads(line) for line in results.read_text().splitlines()]
        assert len(scores) == len(SEEDS), scores
        correct = sum(s["correct"] for s in scores)
        sent = sum(s["transactions"] for s in scores)
        share = sum(s["spy_share"] for s in scores) / len(scores)  # the same network shape every seed
        print(f"dandelion first-spy recall over seeds {SEEDS}: {correct}/{sent} = {correct / sent:.3f}, p = {share:.3f}")
        assert abs(correct / sent - share) <= 0.05, (correct, sent, share, scores)
        return
    lt = LoopThread()
    try:
        runs = [run_policy(lt, policy, SEEDS[0]) for policy in POLICIES]
    finally:
        lt.close()
    _check(runs, tmp_path)


def _check(runs, tmp_path) -> None:
    table = privacy_table(runs)
    (tmp_path / "privacy.md").write_text("\n".join(table) + "\n")
    plot = plot_privacy(tmp_path / "privacy.png", runs)
    print("\n" + "\n".join(table))
    with open(os.environ.get("PRIVACY_TABLE_OUT", os.devnull), "a") as out:
        out.write("\n".join(table) + "\n")
    for run in runs:
        print(describe(run))
    assert plot.stat().st_size > 10_000
    flood, diffusion, dandelion = (r.scores["first-spy"] for r in runs)
    p = runs[2].spy_share
    assert all(r.scores["first-spy"].transactions == 400 for r in runs)
    assert flood.precision >= diffusion.precision, (flood.precision, diffusion.precision)
    assert diffusion.precision >= 2 * dandelion.precision, (diffusion.precision, dandelion.precision)
    with open(os.environ.get(RESULTS, os.devnull), "a") as out:  # judged over every seed by the outer run
        out.write(json.dumps({**dandelion.to_dict(), "spy_share": p}) + "\n")
