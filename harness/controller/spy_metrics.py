"""The controller's spy metrics (issue 11): each source estimator's precision and recall per relay
policy of the senders (both bounded sets: 2 estimators x 4 labels), and the spy's share of nodes p.

Set from every observation that carries the spy's scores: during the run the controller re-scores
every SPY_SCORE_INTERVAL_SECONDS (service.py, Collector.live_privacy) so the gauges move while the
attack runs; the run's full observation sets the final values.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from harness.analysis.model import Observations

BY = ["estimator", "relay_policy"]


class SpyMetrics:
    def __init__(self, r: CollectorRegistry) -> None:
        self.precision = Gauge("harness_controller_spy_precision_ratio", "The spy's precision: mean over honest "
                               "senders of the share of transactions it attributed to a node that are that node's",
                               BY, registry=r)
        self.recall = Gauge("harness_controller_spy_recall_ratio", "The spy's recall: share of transactions whose "
                            "true sender it named", BY, registry=r)
        self.share = Gauge("harness_controller_spy_share_ratio", "p: the spy's identities over all honest nodes "
                           "and spy identities", registry=r)

    def publish(self, obs: Observations) -> None:
        for s in obs.privacy:
            self.precision.labels(s.estimator, s.relay_policy).set(s.precision)
            self.recall.labels(s.estimator, s.relay_policy).set(s.recall)
            self.share.set(s.spy_share)
