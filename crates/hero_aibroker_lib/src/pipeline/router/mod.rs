//! Routing: turns a requested model into an ordered plan of candidates (backend + instance)
//! and a trace of the decision ([`Resolve`]). Reads a registry snapshot and lock-free live
//! state (health, circuits, in-flight counts, latency averages); the relay walks the plan.

mod prefs;
mod resolve;

use std::sync::Arc;

pub use prefs::{PARAMETERS, ProviderPrefs, SortBy};
pub use resolve::{Decision, Defaults, Rejection, Resolve, RouteOptions};

pub use crate::endpoint::Endpoint;
use hero_aibroker_sdk::ErrorCode;

use crate::config::Strategy;
use crate::config::registry::{Backend, Model, Registry};
use crate::error::{ApiError, printable};
use crate::health::Outcome;
use crate::health::affinity::Affinity;
use crate::health::pool::Instance;

/// One thing to try: a model's backend through one provider instance.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub model: Arc<Model>,
    pub backend: usize,
    pub instance: Arc<Instance>,
}

impl Candidate {
    /// The backend this candidate uses.
    pub fn backend(&self) -> &Backend {
        &self.model.backends[self.backend]
    }

    /// `openai-1/gpt-4o`, for messages and headers.
    pub fn label(&self) -> String {
        format!("{}/{}", self.instance.id, self.backend().model_id)
    }

    /// The one place an attempt changes live state: the key's health, the backend's circuit
    /// and measurements, and — on an answer — the session's affinity (`pin`: the affinity
    /// table, the session and the model the client asked for). Rate limits and refused keys
    /// are about one key, so they leave the backend's circuit alone; a deadline is about the
    /// request, so it changes nothing.
    pub fn observe(&self, outcome: &Outcome, policy: CircuitPolicy, pin: Option<Pin<'_>>) {
        self.instance.observe(outcome);
        let backend = self.backend();
        match outcome {
            Outcome::Answered(took) => {
                backend.circuit.success();
                backend.stats.success(*took);
                if let Some(p) = pin {
                    p.affinity
                        .set(p.session, p.requested, &self.instance.id, &backend.model_id);
                }
            }
            Outcome::Failed(_) => {
                backend.stats.failure();
                backend.circuit.failure(policy.failures, policy.open);
            }
            Outcome::RateLimited(_) | Outcome::KeyRefused(_) | Outcome::Deadline => {}
        }
    }
}

/// When a backend's circuit opens: after `failures` consecutive failures, for `open`.
#[derive(Debug, Clone, Copy)]
pub struct CircuitPolicy {
    pub failures: u32,
    pub open: std::time::Duration,
}

/// Where an answered attempt pins its session (see [`Candidate::observe`]).
#[derive(Debug, Clone, Copy)]
pub struct Pin<'a> {
    pub affinity: &'a Affinity,
    pub session: &'a str,
    pub requested: &'a str,
}

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    UnknownModel(String),
    /// The model exists but none of its providers has a key.
    NotServable {
        model: String,
        providers: Vec<String>,
    },
    /// The model (or, for `auto`, every servable model) lacks what the request needs.
    Unsupported {
        model: String,
        missing: String,
    },
    /// Every instance that could serve the model is `auth_failed` or `disabled`.
    AllUnusable {
        model: String,
    },
    /// `auto` found no servable model with the endpoint's capability.
    NoAutoModel {
        capability: &'static str,
    },
    /// The request's `provider` preferences left no backend.
    NoMatch {
        model: String,
    },
}

/// The plan alone, with `strategy` for named models and `auto` alike and no request options
/// (tests and benchmarks; the relay uses [`Resolve`] for the trace too).
pub fn plan_for(
    reg: &Registry,
    requested: &str,
    endpoint: Endpoint,
    strategy: Strategy,
    needs: &Needs,
) -> Result<Vec<Candidate>, PlanError> {
    Resolve {
        registry: reg,
        endpoint,
        model: requested,
        needs,
        options: &RouteOptions::default(),
        defaults: Defaults {
            strategy,
            auto: strategy,
        },
        affinity: None,
        dry_run: false,
    }
    .run()
    .map(|d| d.plan)
    .map_err(|r| r.error)
}

/// [`plan_for`] for a request that needs nothing special.
pub fn plan(
    reg: &Registry,
    requested: &str,
    endpoint: Endpoint,
    strategy: Strategy,
) -> Result<Vec<Candidate>, PlanError> {
    plan_for(reg, requested, endpoint, strategy, &Needs::default())
}

/// What a request needs of a model, read from the request (see `ParsedRequest::needs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// Capabilities the model must declare (`tools`, `vision`, `json_schema`, `reasoning`).
    pub capabilities: Vec<&'static str>,
    /// Estimated prompt tokens; models with a smaller context window are dropped.
    pub prompt_tokens: u64,
}

impl Needs {
    /// The first thing `model` cannot do for this request, if any.
    pub fn missing(&self, model: &Model) -> Option<String> {
        if let Some(cap) = self.capabilities.iter().find(|c| !model.has(c)) {
            return Some((*cap).to_owned());
        }
        (self.prompt_tokens > model.context_window).then(|| {
            format!(
                "a context window of at least {} tokens (it has {})",
                self.prompt_tokens, model.context_window
            )
        })
    }
}

/// A routing refusal as the client's error: what is wrong and what to do about it.
impl From<PlanError> for ApiError {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::UnknownModel(name) => ApiError::new(
                ErrorCode::ModelNotFound,
                format!(
                    "The model \"{}\" does not exist. List the available models with GET /v1/models.",
                    printable(&name)
                ),
            ),
            PlanError::NotServable { model, providers } => ApiError::new(
                ErrorCode::NoBackend,
                format!(
                    "The model {model:?} has no usable backend: no API key is configured for {}. \
                     Set the provider's key (e.g. OPENAI_API_KEY) and restart, or pick a model that GET /v1/models lists as servable.",
                    providers.join(", ")
                ),
            ),
            PlanError::Unsupported { model, missing } => ApiError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "The model \"{}\" cannot serve this request: it needs {missing}. \
                     Pick a model whose capabilities in GET /v1/models include it.",
                    printable(&model)
                ),
            ),
            PlanError::AllUnusable { model } => ApiError::new(
                ErrorCode::NoBackend,
                format!(
                    "Every provider key that could serve the model {model:?} was refused by its provider or disabled. \
                     See providers.list on rpc.sock, fix the key, then providers.reset."
                ),
            ),
            PlanError::NoAutoModel { capability } => ApiError::new(
                ErrorCode::NoBackend,
                format!(
                    "No servable model has the {capability:?} capability, so \"auto\" has nothing to route to."
                ),
            ),
            PlanError::NoMatch { model } => ApiError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "No backend of the model \"{}\" matches the request's `provider` preferences \
                     (only / ignore / order with allow_fallbacks false / max_price / require_parameters). \
                     routing.explain on rpc.sock shows why each backend was left out.",
                    printable(&model)
                ),
            ),
        }
    }
}

#[cfg(test)]
mod strategy_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::registry::tests::registry;
    use crate::health::Outcome;
    use std::time::Duration;

    #[test]
    fn unknown_model_message_says_how_to_list() {
        let e = ApiError::from(PlanError::UnknownModel("x\n".into()));
        assert_eq!(e.status(), axum::http::StatusCode::NOT_FOUND);
        assert!(e.message.contains("GET /v1/models"));
        assert!(e.message.contains(r#""x\n""#), "{}", e.message);
    }

    /// Each outcome changes exactly what it is about: an answer clears the key, closes the
    /// circuit, measures and pins the session; a failure cools the key and counts against the
    /// circuit; a rate limit or a refused key touches only the key; a deadline touches nothing.
    #[test]
    fn observe_changes_key_circuit_stats_and_affinity_together() {
        use crate::health::circuit::CircuitState;
        use crate::health::pool::Health;
        let r = registry(&[("OPENAI_API_KEYS", "a,b,c,d,e")]);
        let cands = plan(&r, "big", Endpoint::Chat, Strategy::Priority).expect("plan");
        let policy = CircuitPolicy {
            failures: 1,
            open: Duration::from_secs(60),
        };
        let affinity = Affinity::default();
        let pin = || Pin {
            affinity: &affinity,
            session: "s1",
            requested: "big",
        };
        let find = |id: &str| {
            cands
                .iter()
                .find(|c| c.instance.id == id)
                .unwrap_or_else(|| panic!("no candidate {id}"))
                .clone()
        };

        // A deadline changes nothing at all.
        let c = find("openai-0");
        c.observe(&Outcome::Deadline, policy, Some(pin()));
        assert_eq!(c.instance.health(), Health::Healthy);
        assert_eq!(c.backend().circuit.state(), CircuitState::Closed);
        assert_eq!(c.backend().stats.ttfb_us(), 0);
        assert!(affinity.get("s1", "big").is_none());

        // A rate limit cools only that key.
        c.observe(
            &Outcome::RateLimited(Some(Duration::from_secs(30))),
            policy,
            None,
        );
        assert_eq!(c.instance.health(), Health::Cooldown);
        assert_eq!(c.backend().circuit.state(), CircuitState::Closed);
        assert!((c.backend().stats.success_rate() - 1.0).abs() < 1e-9);

        // A refused key is refused; the backend is fine.
        let c = find("openai-1");
        c.observe(&Outcome::KeyRefused(401), policy, None);
        assert_eq!(c.instance.health(), Health::AuthFailed);
        assert_eq!(c.backend().circuit.state(), CircuitState::Closed);

        // An answer measures and pins the session.
        let c = find("openai-2");
        c.observe(
            &Outcome::Answered(Duration::from_millis(40)),
            policy,
            Some(pin()),
        );
        assert_eq!(c.instance.health(), Health::Healthy);
        assert_eq!(c.backend().stats.ttfb_us(), 40_000);
        let sticky = affinity.get("s1", "big").expect("pinned");
        assert_eq!(sticky.instance, "openai-2");
        assert_eq!(sticky.model_id, c.backend().model_id);

        // A failure cools the key and opens the backend's circuit (threshold 1 here).
        let c = find("openai-3");
        c.observe(&Outcome::Failed("HTTP 500".into()), policy, Some(pin()));
        assert_eq!(c.instance.health(), Health::Cooldown);
        assert_eq!(c.backend().circuit.state(), CircuitState::Open);
        assert!(c.backend().stats.success_rate() < 1.0);
        assert_eq!(
            affinity.get("s1", "big").expect("still pinned").instance,
            "openai-2",
            "a failure never moves the pin"
        );
    }

    fn labels(plan: &[Candidate]) -> Vec<String> {
        plan.iter().map(Candidate::label).collect()
    }

    #[test]
    fn priority_then_price_then_keys() {
        let r = registry(&[("OPENAI_API_KEYS", "a,b"), ("PAID_KEY", "p")]);
        // big: both priority 1; openai's gpt-big is cheaper (10 < 18) so it comes first.
        let p = plan(&r, "big", Endpoint::Chat, Strategy::Cheapest).expect("plan");
        let l = labels(&p);
        assert_eq!(l.len(), 3);
        assert!(
            l[0].ends_with("/gpt-big") && l[1].ends_with("/gpt-big"),
            "{l:?}"
        );
        assert_eq!(l[2], "paid-0/big-1");
        // small: local has priority 1 although openai is listed first.
        let l = labels(&plan(&r, "tiny", Endpoint::Chat, Strategy::Cheapest).expect("plan"));
        assert_eq!(l[0], "local-0/small-gguf");
    }

    #[test]
    fn keys_rotate_between_requests() {
        let r = registry(&[("OPENAI_API_KEYS", "a,b")]);
        let first: Vec<_> = (0..4)
            .map(|_| {
                plan(&r, "openai/gpt-big", Endpoint::Chat, Strategy::Cheapest).expect("plan")[0]
                    .instance
                    .id
                    .clone()
            })
            .collect();
        assert_eq!(first, ["openai-0", "openai-1", "openai-0", "openai-1"]);
    }

    #[test]
    fn cooling_instances_go_last_but_stay() {
        let r = registry(&[("OPENAI_API_KEYS", "a,b")]);
        r.providers["openai"].instances[0]
            .observe(&Outcome::RateLimited(Some(Duration::from_secs(60))));
        for _ in 0..3 {
            let l = labels(&plan(&r, "big", Endpoint::Chat, Strategy::Cheapest).expect("plan"));
            assert_eq!(l, ["openai-1/gpt-big", "openai-0/gpt-big"]);
        }
    }

    #[test]
    fn requests_needing_capabilities_drop_models_without_them() {
        let r = registry(&[("OPENAI_API_KEY", "a"), ("PAID_KEY", "p")]);
        let tools = Needs {
            capabilities: vec!["tools"],
            prompt_tokens: 10,
        };
        assert_eq!(
            plan_for(&r, "small", Endpoint::Chat, Strategy::Cheapest, &tools)
                .expect_err("no tools"),
            PlanError::Unsupported {
                model: "small".into(),
                missing: "tools".into()
            }
        );
        let big_prompt = Needs {
            capabilities: vec![],
            prompt_tokens: 100_000,
        };
        let l = labels(
            &plan_for(&r, "auto", Endpoint::Chat, Strategy::Cheapest, &big_prompt).expect("plan"),
        );
        assert!(
            l.iter().all(|c| c.contains("big")),
            "only the 200k-context model: {l:?}"
        );
        let err = plan_for(&r, "small", Endpoint::Chat, Strategy::Cheapest, &big_prompt)
            .expect_err("too small");
        assert!(
            matches!(err, PlanError::Unsupported { ref missing, .. } if missing.contains("8192")),
            "{err:?}"
        );
    }

    #[test]
    fn an_open_circuit_takes_a_backend_out_unless_it_is_the_last() {
        let r = registry(&[("OPENAI_API_KEY", "a"), ("PAID_KEY", "p")]);
        let gpt_big = &r.models["big"].backends[1];
        gpt_big.circuit.failure(1, Duration::from_secs(60));
        let l = labels(&plan(&r, "big", Endpoint::Chat, Strategy::Cheapest).expect("plan"));
        assert_eq!(l, ["paid-0/big-1"], "the tripped backend is left out");
        let l =
            labels(&plan(&r, "openai/gpt-big", Endpoint::Chat, Strategy::Cheapest).expect("plan"));
        assert_eq!(l, ["openai-0/gpt-big"], "but never when it is all there is");
        gpt_big.circuit.success();
        assert_eq!(
            plan(&r, "big", Endpoint::Chat, Strategy::Cheapest)
                .expect("plan")
                .len(),
            2
        );
    }

    #[test]
    fn auth_failed_and_disabled_instances_are_left_out() {
        let r = registry(&[("OPENAI_API_KEYS", "a,b")]);
        r.providers["openai"].instances[0].observe(&Outcome::KeyRefused(401));
        for _ in 0..3 {
            assert_eq!(
                labels(
                    &plan(&r, "openai/gpt-big", Endpoint::Chat, Strategy::Cheapest).expect("plan")
                ),
                ["openai-1/gpt-big"]
            );
        }
        r.providers["openai"].instances[1].disable(None);
        assert_eq!(
            plan(&r, "openai/gpt-big", Endpoint::Chat, Strategy::Cheapest)
                .expect_err("none usable"),
            PlanError::AllUnusable {
                model: "openai/gpt-big".into()
            }
        );
        r.providers["openai"].instances[0].reset();
        assert_eq!(
            labels(&plan(&r, "openai/gpt-big", Endpoint::Chat, Strategy::Cheapest).expect("plan")),
            ["openai-0/gpt-big"]
        );
    }

    #[test]
    fn unknown_and_unservable_models() {
        let r = registry(&[]);
        assert_eq!(
            plan(&r, "nope", Endpoint::Chat, Strategy::Cheapest).expect_err("unknown"),
            PlanError::UnknownModel("nope".into())
        );
        assert_eq!(
            plan(&r, "big", Endpoint::Chat, Strategy::Cheapest).expect_err("no keys"),
            PlanError::NotServable {
                model: "big".into(),
                providers: vec!["openai".into(), "paid".into()]
            }
        );
    }

    #[test]
    fn auto_strategies() {
        let r = registry(&[("OPENAI_API_KEY", "a"), ("PAID_KEY", "p")]);
        let cheap = labels(&plan(&r, "auto", Endpoint::Chat, Strategy::Cheapest).expect("plan"));
        assert_eq!(cheap[0], "local-0/small-gguf");
        assert!(
            !cheap.iter().any(|l| l.contains("embedding")),
            "embeddings model is not a chat model"
        );
        let best = labels(&plan(&r, "auto", Endpoint::Chat, Strategy::Best).expect("plan"));
        assert_eq!(
            best[0], "openai-0/gpt-big",
            "frontier tier first, then priority/price"
        );
        assert_eq!(
            labels(&plan(&r, "autobest", Endpoint::Chat, Strategy::Cheapest).expect("plan")),
            best
        );
        let emb =
            labels(&plan(&r, "auto", Endpoint::Embeddings, Strategy::Cheapest).expect("plan"));
        assert_eq!(emb, ["openai-0/text-embedding-3-small"]);
        assert_eq!(
            plan(&r, "auto", Endpoint::Completions, Strategy::Cheapest).expect_err("none"),
            PlanError::NoAutoModel {
                capability: "completions"
            }
        );
    }
}
