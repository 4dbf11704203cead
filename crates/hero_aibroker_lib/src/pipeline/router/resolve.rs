//! The resolver: one function turns a request into an ordered plan of candidates and a trace
//! of why each backend and key got its place or was left out. The relay and the
//! `routing.explain` RPC both call it (explain with `dry_run`, which reads cursors and circuit
//! probes without taking them), so the explanation and the real routing cannot disagree.

use std::cmp::Ordering;
use std::sync::Arc;
use std::sync::atomic::Ordering as AtomicOrdering;

use hero_aibroker_sdk::admin::{RouteTrace, TraceCandidate};

use super::prefs::{ProviderPrefs, SortBy};
use super::{Candidate, Endpoint, Needs, PlanError};
use crate::config::Strategy;
use crate::config::models::Tier;
use crate::config::registry::{Backend, Model, Registry, Target};
use crate::health::affinity::Affinity;
use crate::health::circuit::CircuitState;
use crate::health::pool::Health;

/// Routing inputs a request carries besides its model (OpenRouter fields, session).
#[derive(Debug, Clone)]
pub struct RouteOptions {
    /// `models: [...]`: models to fall back to, in order, after the requested one.
    pub fallbacks: Vec<String>,
    /// The `provider` preferences object.
    pub prefs: ProviderPrefs,
    /// `x-session-id` header or `user` field, for session affinity.
    pub session: Option<String>,
    /// Parameter names the request uses (for `provider.require_parameters`).
    pub params: Vec<String>,
}

impl Default for RouteOptions {
    fn default() -> Self {
        RouteOptions {
            fallbacks: Vec::new(),
            prefs: ProviderPrefs {
                allow_fallbacks: true,
                ..ProviderPrefs::default()
            },
            session: None,
            params: Vec::new(),
        }
    }
}

/// Strategies that apply when a model sets none.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    /// `BACKEND_STRATEGY`.
    pub strategy: Strategy,
    /// `ROUTING_STRATEGY`.
    pub auto: Strategy,
}

/// Everything a decision reads.
#[derive(Debug, Clone, Copy)]
pub struct Resolve<'a> {
    pub registry: &'a Registry,
    pub endpoint: Endpoint,
    pub model: &'a str,
    pub needs: &'a Needs,
    pub options: &'a RouteOptions,
    pub defaults: Defaults,
    pub affinity: Option<&'a Affinity>,
    /// Explain only: do not advance cursors or take a half-open probe.
    pub dry_run: bool,
}

/// A plan and its trace.
#[derive(Debug)]
pub struct Decision {
    pub plan: Vec<Candidate>,
    pub trace: RouteTrace,
}

/// No plan, and the trace of why.
#[derive(Debug)]
pub struct Rejection {
    pub error: PlanError,
    pub trace: Box<RouteTrace>,
}

/// A group of backends tried together: the requested model (or `auto`), then each fallback.
struct Group {
    pairs: Vec<(Arc<Model>, usize)>,
    strategy: Strategy,
    /// Whether backends without keys are worth a trace line (not for `auto`).
    named: bool,
}

impl Resolve<'_> {
    /// Runs the resolver (see the module docs).
    pub fn run(&self) -> Result<Decision, Rejection> {
        let opts = self.options;
        let sort = if opts.prefs.order.is_empty() {
            opts.prefs.sort
        } else {
            None
        };
        let mut trace = RouteTrace {
            requested: self.model.to_owned(),
            fallbacks: opts.fallbacks.clone(),
            ..RouteTrace::default()
        };
        let mut skipped: Vec<TraceCandidate> = Vec::new();
        let mut plan: Vec<Candidate> = Vec::new();
        let mut first_error: Option<PlanError> = None;
        let mut unusable = false;
        let mut no_key: Vec<String> = Vec::new();
        let mut by_prefs = false;
        let mut seen: Vec<Arc<Model>> = Vec::new();
        let mut tripped_groups: Vec<Candidate> = Vec::new();

        let names = std::iter::once(self.model).chain(opts.fallbacks.iter().map(String::as_str));
        for (gi, name) in names.enumerate() {
            let group = match self.group(name, &mut skipped) {
                Ok(g) => g,
                Err(e) => {
                    if gi == 0 && matches!(e, PlanError::UnknownModel(_)) {
                        return Err(Rejection {
                            error: e,
                            trace: Box::new(trace),
                        });
                    }
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            // A fallback naming a model already in the plan (an alias, say) adds nothing.
            if let Some(first) = group.pairs.first()
                && seen.iter().any(|m| Arc::ptr_eq(m, &first.0))
            {
                continue;
            }
            seen.extend(group.pairs.first().map(|p| p.0.clone()));
            if gi == 0 {
                trace.strategy = sort.map_or(group.strategy.name(), SortBy::label).to_owned();
            }
            let mut cands = Vec::new();
            for (model, bi) in &group.pairs {
                let backend = &model.backends[*bi];
                if let Some(why) = opts.prefs.excludes(backend, &opts.params, self.registry) {
                    by_prefs = true;
                    skipped.push(entry(model, backend, None, None, Some(why)));
                    continue;
                }
                let instances = self.registry.instances(backend);
                if instances.is_empty() {
                    if group.named {
                        no_key.push(backend.provider.clone());
                        skipped.push(entry(
                            model,
                            backend,
                            None,
                            None,
                            Some(format!("provider {} has no API key", backend.provider)),
                        ));
                    }
                    continue;
                }
                for inst in instances {
                    if !inst.usable() {
                        unusable = true;
                        let why = match inst.health() {
                            Health::AuthFailed => "auth_failed",
                            _ => "disabled",
                        };
                        let why = match inst.reason() {
                            Some(r) => format!("{why}: {r}"),
                            None => why.to_owned(),
                        };
                        skipped.push(entry(model, backend, Some(&inst.id), None, Some(why)));
                        continue;
                    }
                    // Two models may share an upstream model on one key: try it once.
                    let dup = plan.iter().chain(cands.iter()).any(|c: &Candidate| {
                        Arc::ptr_eq(&c.instance, inst) && c.backend().model_id == backend.model_id
                    });
                    if !dup {
                        cands.push(Candidate {
                            model: model.clone(),
                            backend: *bi,
                            instance: inst.clone(),
                        });
                    }
                }
            }
            let cursor = if cands.len() > 1 && rotates(group.strategy, sort) {
                let c = &group.pairs[0].0.cursor;
                if self.dry_run {
                    c.load(AtomicOrdering::Relaxed)
                } else {
                    c.fetch_add(1, AtomicOrdering::Relaxed)
                }
            } else {
                0
            };
            order(&mut cands, group.strategy, sort, cursor);
            if !opts.prefs.order.is_empty() {
                cands.sort_by_cached_key(|c| opts.prefs.order_of(&c.backend().provider));
            }
            let (left_out, last_resort) = self.by_health(&mut cands, &mut trace, gi == 0);
            for c in left_out {
                skipped.push(entry(
                    &c.model,
                    c.backend(),
                    Some(&c.instance.id),
                    None,
                    Some("circuit open (consecutive failures); no traffic until its probe".into()),
                ));
            }
            if last_resort {
                // Every backend of this model has an open circuit: its keys are tried only
                // after every other model of the request (fallbacks), never skipped.
                tripped_groups.extend(cands);
            } else {
                plan.extend(cands);
            }
        }
        for c in tripped_groups {
            let dup = plan.iter().any(|p: &Candidate| {
                Arc::ptr_eq(&p.instance, &c.instance)
                    && p.backend().model_id == c.backend().model_id
            });
            if !dup {
                plan.push(c);
            }
        }

        if plan.is_empty() {
            let error = if let Some(e @ PlanError::Unsupported { .. }) = first_error {
                e
            } else if by_prefs && !unusable {
                PlanError::NoMatch {
                    model: self.model.to_owned(),
                }
            } else if unusable {
                PlanError::AllUnusable {
                    model: self.model.to_owned(),
                }
            } else if let Some(e) = first_error {
                e
            } else if !no_key.is_empty() {
                no_key.dedup();
                PlanError::NotServable {
                    model: self.model.to_owned(),
                    providers: no_key,
                }
            } else {
                PlanError::NoAutoModel {
                    capability: self.endpoint.capability(),
                }
            };
            trace.candidates = skipped;
            return Err(Rejection {
                error,
                trace: Box::new(trace),
            });
        }

        let mut ranked: Vec<TraceCandidate> = plan
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut e = entry(
                    &c.model,
                    c.backend(),
                    Some(&c.instance.id),
                    Some(u32::try_from(i).unwrap_or(u32::MAX)),
                    None,
                );
                e.note = note(c);
                e
            })
            .collect();
        if let Some(label) = &trace.affinity
            && let Some(first) = ranked.first_mut()
        {
            first.note = Some(format!("sticky session ({label})"));
        }
        ranked.extend(skipped);
        trace.candidates = ranked;
        Ok(Decision { plan, trace })
    }

    /// The backends `name` stands for, with their strategy; capability misses are traced.
    fn group(&self, name: &str, skipped: &mut Vec<TraceCandidate>) -> Result<Group, PlanError> {
        let target = self
            .registry
            .resolve(name)
            .ok_or_else(|| PlanError::UnknownModel(name.to_owned()))?;
        match target {
            Target::Model {
                model,
                only_backend,
            } => {
                if let Some(missing) = self.needs.missing(&model) {
                    for b in &model.backends {
                        skipped.push(entry(
                            &model,
                            b,
                            None,
                            None,
                            Some(format!("model lacks {missing}")),
                        ));
                    }
                    return Err(PlanError::Unsupported {
                        model: model.name.clone(),
                        missing,
                    });
                }
                let mut pairs: Vec<(Arc<Model>, usize)> = match only_backend {
                    Some(i) => vec![(model.clone(), i)],
                    None => (0..model.backends.len())
                        .map(|i| (model.clone(), i))
                        .collect(),
                };
                pairs.sort_by(|a, b| by_priority(&a.0.backends[a.1], &b.0.backends[b.1]));
                Ok(Group {
                    strategy: model.strategy.unwrap_or(self.defaults.strategy),
                    pairs,
                    named: true,
                })
            }
            Target::Auto(forced) => {
                let strategy = forced.unwrap_or(self.defaults.auto);
                // `auto` ranks backends, not keys: only the best AUTO_BACKENDS (by the
                // strategy's backend-level order, among those the request's preferences and
                // keys allow) are expanded into key candidates — a plan of hundreds of keys
                // is never walked, and ranking them all would cost more than the decision.
                let prefs = &self.options.prefs;
                let capability = self.endpoint.capability();
                let mut refs: Vec<(&Arc<Model>, usize)> = Vec::new();
                let mut first_missing = None;
                let mut excluded = false;
                for m in self
                    .registry
                    .models
                    .values()
                    .filter(|m| !m.from_catalog && m.has(capability))
                {
                    if let Some(missing) = self.needs.missing(m) {
                        if self.registry.servable(m) {
                            first_missing.get_or_insert(missing);
                        }
                        continue;
                    }
                    for (i, b) in m.backends.iter().enumerate() {
                        if self.registry.instances(b).is_empty() {
                            continue;
                        }
                        if prefs
                            .excludes(b, &self.options.params, self.registry)
                            .is_some()
                        {
                            excluded = true;
                            continue;
                        }
                        refs.push((m, i));
                    }
                }
                if refs.is_empty() {
                    return Err(match first_missing {
                        Some(missing) => PlanError::Unsupported {
                            model: name.to_owned(),
                            missing,
                        },
                        None if excluded => PlanError::NoMatch {
                            model: name.to_owned(),
                        },
                        None => PlanError::NoAutoModel { capability },
                    });
                }
                // `best` (`autobest`) picks among the premium-or-above models when any can
                // serve, failing over only among them; the best of the rest otherwise.
                if strategy == Strategy::Best && refs.iter().any(|(m, _)| m.tier >= Tier::Premium) {
                    refs.retain(|(m, _)| m.tier >= Tier::Premium);
                }
                let sort = prefs.order.is_empty().then_some(prefs.sort).flatten();
                let mut keyed: Vec<([u64; 5], &Arc<Model>, usize)> = refs
                    .into_iter()
                    .map(|(m, i)| (backend_key(m, &m.backends[i], strategy, sort), m, i))
                    .collect();
                if keyed.len() > AUTO_BACKENDS {
                    keyed.select_nth_unstable_by_key(AUTO_BACKENDS - 1, |k| k.0);
                    keyed.truncate(AUTO_BACKENDS);
                }
                keyed.sort_by_key(|k| k.0);
                let refs: Vec<(&Arc<Model>, usize)> =
                    keyed.into_iter().map(|(_, m, i)| (m, i)).collect();
                Ok(Group {
                    strategy,
                    pairs: refs.into_iter().map(|(m, i)| (m.clone(), i)).collect(),
                    named: false,
                })
            }
        }
    }

    /// Stable partition: ready candidates, then cooling ones, then backends whose circuit is
    /// open (only if nothing else is left). A sticky session's candidate goes first when ready.
    /// Returns the open-circuit candidates it left out, and whether `cands` are only
    /// open-circuit ones (the last resort).
    fn by_health(
        &self,
        cands: &mut Vec<Candidate>,
        trace: &mut RouteTrace,
        primary: bool,
    ) -> (Vec<Candidate>, bool) {
        let mut ready = Vec::with_capacity(cands.len());
        let mut cooling = Vec::new();
        let mut tripped = Vec::new();
        // Circuit admission is per backend: ask once per backend, in plan order.
        let mut admitted: Vec<(*const Backend, bool)> = Vec::new();
        for c in cands.drain(..) {
            let b: *const Backend = c.backend();
            let ok = match admitted.iter().find(|(p, _)| *p == b) {
                Some((_, ok)) => *ok,
                None => {
                    let circuit = &c.backend().circuit;
                    let ok = if self.dry_run {
                        circuit.would_admit()
                    } else {
                        circuit.admit()
                    };
                    admitted.push((b, ok));
                    ok
                }
            };
            if !ok {
                tripped.push(c);
            } else if c.instance.cooling_down() {
                cooling.push(c);
            } else {
                ready.push(c);
            }
        }
        if primary
            && let (Some(session), Some(aff)) = (&self.options.session, self.affinity)
            && let Some(sticky) = aff.get(session, self.model)
            && let Some(pos) = ready.iter().position(|c| {
                c.instance.id == sticky.instance && c.backend().model_id == sticky.model_id
            })
        {
            let c = ready.remove(pos);
            trace.affinity = Some(c.label());
            ready.insert(0, c);
        }
        ready.extend(cooling);
        let last_resort = ready.is_empty() && !tripped.is_empty();
        if last_resort {
            ready = std::mem::take(&mut tripped);
        }
        *cands = ready;
        (tripped, last_resort)
    }
}

/// Backends of `auto` expanded into key candidates (see [`Resolve::group`]).
const AUTO_BACKENDS: usize = 8;

/// The backend-level part of a strategy's order (`auto`'s preselection), as a sort key:
/// computed once per backend, compared as integers. Prices and rates are non-negative, so
/// their IEEE bits order like the numbers.
fn backend_key(model: &Model, b: &Backend, strategy: Strategy, sort: Option<SortBy>) -> [u64; 5] {
    let price = b.price().max(0.0).to_bits();
    let priority = u64::from(b.priority);
    match (sort, strategy) {
        (Some(SortBy::Price), _) | (None, Strategy::Cheapest) => [price, priority, 0, 0, 0],
        (Some(SortBy::Latency), _) | (None, Strategy::Latency) => {
            [ttfb_key(b), priority, price, 0, 0]
        }
        (Some(SortBy::Throughput), _) => [
            u64::MAX - b.stats.tokens_per_second().max(0.0).to_bits(),
            priority,
            price,
            0,
            0,
        ],
        (None, Strategy::Best) => [
            u64::MAX - model.tier as u64,
            u64::MAX - u64::from(success_bucket(b)),
            ttfb_key(b),
            priority,
            price,
        ],
        (None, _) => [priority, price, 0, 0, 0],
    }
}

/// Strategies whose order starts from a rotating cursor (ties spread over keys).
fn rotates(strategy: Strategy, sort: Option<SortBy>) -> bool {
    sort.is_none() && strategy != Strategy::Priority
}

/// Orders one group's candidates (already by priority, then price, keys in config order).
fn order(cands: &mut [Candidate], strategy: Strategy, sort: Option<SortBy>, cursor: usize) {
    let n = cands.len();
    if n < 2 {
        return;
    }
    if let Some(sort) = sort {
        match sort {
            SortBy::Price => cands.sort_by(|a, b| by_price(a.backend(), b.backend())),
            SortBy::Latency => cands.sort_by_key(|c| ttfb_key(c.backend())),
            SortBy::Throughput => cands.sort_by(|a, b| {
                let (ta, tb) = (
                    a.backend().stats.tokens_per_second(),
                    b.backend().stats.tokens_per_second(),
                );
                tb.partial_cmp(&ta).unwrap_or(Ordering::Equal)
            }),
        }
        return;
    }
    if strategy != Strategy::Priority {
        cands.rotate_left(cursor % n);
    }
    match strategy {
        Strategy::Priority => {}
        Strategy::RoundRobin => cands.sort_by_key(|c| c.backend().priority),
        Strategy::LeastBusy => {
            cands.sort_by_key(|c| (c.instance.in_flight(), c.backend().priority));
        }
        Strategy::Latency => {
            cands.sort_by_key(|c| ttfb_key(c.backend()));
            // Power of two choices among the backends close to the fastest (within 25 %):
            // the better of two pseudo-random ones goes first, so near-equal backends share
            // the load instead of herding onto one; a clearly faster backend always leads.
            let best = ttfb_key(cands[0].backend());
            let near = cands
                .iter()
                .take_while(|c| ttfb_key(c.backend()) <= best.saturating_add(best / 4))
                .count();
            if near > 2 {
                let h = mix(cursor as u64);
                let a = (h % near as u64) as usize;
                let b = ((h >> 32) % (near as u64 - 1)) as usize;
                let b = if b >= a { b + 1 } else { b };
                cands[..=a.min(b)].rotate_right(1);
            }
        }
        Strategy::Cheapest => cands.sort_by(|a, b| by_price(a.backend(), b.backend())),
        Strategy::Best => {
            cands.sort_by_cached_key(|c| backend_key(&c.model, c.backend(), Strategy::Best, None));
        }
    }
}

/// Unmeasured backends (0) sort first so they get measured.
fn ttfb_key(b: &Backend) -> u64 {
    b.stats.ttfb_us()
}

/// Success rate in 5 % steps, so noise does not reorder equal backends.
fn success_bucket(b: &Backend) -> u32 {
    (b.stats.success_rate() * 20.0 + 0.5) as u32
}

/// splitmix64: spreads consecutive cursor values.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(super) fn by_priority(a: &Backend, b: &Backend) -> Ordering {
    a.priority
        .cmp(&b.priority)
        .then_with(|| cmp_f64(a.price(), b.price()))
}

fn by_price(a: &Backend, b: &Backend) -> Ordering {
    cmp_f64(a.price(), b.price()).then_with(|| a.priority.cmp(&b.priority))
}

fn cmp_f64(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or(Ordering::Equal)
}

fn entry(
    model: &Model,
    backend: &Backend,
    instance: Option<&str>,
    rank: Option<u32>,
    skipped: Option<String>,
) -> TraceCandidate {
    TraceCandidate {
        model: model.name.clone(),
        provider: backend.provider.clone(),
        instance: instance.map(str::to_owned),
        upstream_model: backend.model_id.clone(),
        rank,
        skipped,
        note: None,
    }
}

/// Why a ranked candidate sits where it does, when it is not simply ready.
fn note(c: &Candidate) -> Option<String> {
    if let Some(left) = c.instance.cooldown_left() {
        return Some(format!("cooling down {:.1}s", left.as_secs_f64()));
    }
    match c.backend().circuit.state() {
        CircuitState::Closed => None,
        CircuitState::Open => Some("circuit open: tried only because nothing else is left".into()),
        CircuitState::HalfOpen => Some("circuit half-open: probe".into()),
    }
}
