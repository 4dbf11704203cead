//! Prometheus metrics of one broker. The recorder belongs to the broker's state (not the
//! process-global recorder), so several brokers can live in one test process; recording takes
//! no global lock (the exporter's registry is sharded).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use hero_aibroker_sdk::admin::RequestStatus;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Latency buckets in seconds: 1 ms … 5 min (LLM calls are long).
const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Metrics.
pub struct Telemetry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Requests refused before admission, and when that was last logged (ms since `epoch`).
    refused: AtomicU64,
    last_refused_log_ms: AtomicU64,
    epoch: std::time::Instant,
    /// The handles of each model and provider seen, by model then provider.
    pairs: DashMap<String, DashMap<String, Arc<Pair>>>,
}

/// The metric handles of one model served by one provider, registered once: recording a
/// request is then a few atomic adds, not a label set built (two strings per metric) and
/// looked up in the registry for each of six metrics.
struct Pair {
    /// `hero_aibroker_requests_total` and `hero_aibroker_errors_total` by status (the order of
    /// [`RequestStatus::ALL`]), registered when a status first occurs.
    requests: [OnceLock<Counter>; RequestStatus::ALL.len()],
    errors: [OnceLock<Counter>; RequestStatus::ALL.len()],
    prompt_tokens: Counter,
    completion_tokens: Counter,
    /// Registered with the first request that cost something (as before: a free model shows
    /// no cost series).
    cost: OnceLock<Counter>,
    duration: Histogram,
    /// Registered with the first request that had a first byte.
    ttfb: OnceLock<Histogram>,
    labels: [(&'static str, String); 2],
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

/// What one finished request contributes.
#[derive(Debug)]
pub struct Sample<'a> {
    pub model: &'a str,
    pub provider: &'a str,
    pub status: RequestStatus,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
    pub latency_s: f64,
    pub ttfb_s: Option<f64>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// A fresh recorder.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        Telemetry {
            recorder,
            handle,
            refused: AtomicU64::new(0),
            last_refused_log_ms: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            pairs: DashMap::new(),
        }
    }

    /// Records a finished request.
    pub fn request(&self, s: &Sample<'_>) {
        let pair = self.pair(s.model, s.provider);
        let at = RequestStatus::ALL
            .iter()
            .position(|x| *x == s.status)
            .unwrap_or(0);
        let status = ("status", s.status.as_str().to_owned());
        pair.requests[at]
            .get_or_init(|| {
                let [model, provider] = pair.labels.clone();
                self.counter(
                    "hero_aibroker_requests_total",
                    &[model, provider, status.clone()],
                )
            })
            .increment(1);
        if s.status != RequestStatus::Ok {
            pair.errors[at]
                .get_or_init(|| {
                    let [model, _] = pair.labels.clone();
                    self.counter("hero_aibroker_errors_total", &[model, status.clone()])
                })
                .increment(1);
        }
        pair.prompt_tokens.increment(s.prompt_tokens);
        pair.completion_tokens.increment(s.completion_tokens);
        if s.cost_usd > 0.0 {
            // Counters are integers: cost is kept in micro-USD.
            pair.cost
                .get_or_init(|| self.counter("hero_aibroker_cost_microusd_total", &pair.labels))
                .increment((s.cost_usd * 1e6).round() as u64);
        }
        pair.duration.record(s.latency_s);
        if let Some(t) = s.ttfb_s {
            pair.ttfb
                .get_or_init(|| {
                    self.histogram("hero_aibroker_time_to_first_byte_seconds", &pair.labels)
                })
                .record(t);
        }
    }

    /// Registers (or finds) counter `name` with `labels` in this broker's recorder.
    fn counter(&self, name: &'static str, labels: &[(&'static str, String)]) -> Counter {
        metrics::with_local_recorder(&self.recorder, || metrics::counter!(name, labels))
    }

    /// Registers (or finds) histogram `name` with `labels` in this broker's recorder.
    fn histogram(&self, name: &'static str, labels: &[(&'static str, String)]) -> Histogram {
        metrics::with_local_recorder(&self.recorder, || metrics::histogram!(name, labels))
    }

    /// The handles of `model` served by `provider`, registered on first use.
    fn pair(&self, model: &str, provider: &str) -> Arc<Pair> {
        if let Some(p) = self
            .pairs
            .get(model)
            .and_then(|m| m.get(provider).map(|p| p.clone()))
        {
            return p;
        }
        let labels = [
            ("model", model.to_owned()),
            ("provider", provider.to_owned()),
        ];
        let pair = Arc::new(Pair {
            requests: Default::default(),
            errors: Default::default(),
            prompt_tokens: self.counter("hero_aibroker_prompt_tokens_total", &labels),
            completion_tokens: self.counter("hero_aibroker_completion_tokens_total", &labels),
            cost: OnceLock::new(),
            duration: self.histogram("hero_aibroker_request_duration_seconds", &labels),
            ttfb: OnceLock::new(),
            labels,
        });
        self.pairs
            .entry(model.to_owned())
            .or_default()
            .entry(provider.to_owned())
            .or_insert(pair)
            .clone()
    }

    /// Counts a request turned away before it was admitted (`reason`: `overloaded`), and
    /// logs it at most once per second (a flood must not flood the log too).
    pub fn refused(&self, reason: &'static str) {
        metrics::with_local_recorder(&self.recorder, || {
            metrics::counter!("hero_aibroker_refused_total", "reason" => reason).increment(1);
        });
        let total = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let now = u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1000);
        let last = self.last_refused_log_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1000
            && self
                .last_refused_log_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(reason, refused_total = total, "requests refused");
        }
    }

    /// Prometheus text exposition, with the in-flight gauge set to `in_flight`.
    pub fn render(&self, in_flight: u64, ledger_dropped: u64) -> String {
        metrics::with_local_recorder(&self.recorder, || {
            metrics::gauge!("hero_aibroker_in_flight_requests").set(in_flight as f64);
            metrics::gauge!("hero_aibroker_ledger_dropped_rows").set(ledger_dropped as f64);
        });
        self.handle.render()
    }

    /// Folds recorded histogram samples into their buckets. The exporter keeps raw samples
    /// until then, so this must run periodically or memory grows with traffic.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let t = Telemetry::new();
        t.request(&Sample {
            model: "m",
            provider: "openai-0",
            status: RequestStatus::Ok,
            prompt_tokens: 10,
            completion_tokens: 5,
            cost_usd: 0.002,
            latency_s: 0.3,
            ttfb_s: Some(0.1),
        });
        let text = t.render(3, 0);
        assert!(
            text.contains(
                r#"hero_aibroker_requests_total{model="m",provider="openai-0",status="ok"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"hero_aibroker_prompt_tokens_total{model="m",provider="openai-0"} 10"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"hero_aibroker_cost_microusd_total{model="m",provider="openai-0"} 2000"#
            ),
            "{text}"
        );
        assert!(
            text.contains("hero_aibroker_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(
            text.contains("hero_aibroker_in_flight_requests 3"),
            "{text}"
        );
    }

    #[test]
    fn handles_made_once_count_every_request_of_each_pair_and_status() {
        let t = Telemetry::new();
        let sample = |model, provider, status, cost_usd| Sample {
            model,
            provider,
            status,
            prompt_tokens: 1,
            completion_tokens: 2,
            cost_usd,
            latency_s: 0.01,
            ttfb_s: None,
        };
        for _ in 0..3 {
            t.request(&sample("m", "a-0", RequestStatus::Ok, 0.0));
        }
        t.request(&sample("m", "a-0", RequestStatus::Partial, 0.000_001));
        t.request(&sample("m", "b-0", RequestStatus::Error, 0.0));
        let text = t.render(0, 0);
        for line in [
            r#"hero_aibroker_requests_total{model="m",provider="a-0",status="ok"} 3"#,
            r#"hero_aibroker_requests_total{model="m",provider="a-0",status="partial"} 1"#,
            r#"hero_aibroker_requests_total{model="m",provider="b-0",status="error"} 1"#,
            r#"hero_aibroker_errors_total{model="m",status="partial"} 1"#,
            r#"hero_aibroker_errors_total{model="m",status="error"} 1"#,
            r#"hero_aibroker_prompt_tokens_total{model="m",provider="a-0"} 4"#,
            r#"hero_aibroker_completion_tokens_total{model="m",provider="b-0"} 2"#,
            r#"hero_aibroker_cost_microusd_total{model="m",provider="a-0"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        // Series appear only once they have something to say, as before the handles.
        assert!(!text.contains(r#"hero_aibroker_cost_microusd_total{model="m",provider="b-0"}"#));
        assert!(!text.contains("hero_aibroker_time_to_first_byte_seconds"));
    }
}
