//! The requests running right now, for the console's "In flight" page and `requests.list`,
//! and the operator's cancel (`requests.cancel`). Each request registers when it is admitted
//! and leaves when it ends; the map is sharded (no global lock on the request path) and each
//! entry's few late-known fields (model, key, provider) sit behind its own uncontended lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use std::task::{Context, Poll};

use dashmap::DashMap;
use futures_util::task::AtomicWaker;
use hero_aibroker_sdk::admin::RunningRequest;

/// The operator's cancel of one request: a flag and the waker of the task waiting on it.
/// Waiting costs an atomic waker registration per poll and no lock (a `CancellationToken` took
/// two locks per poll, on every upstream read of every stream).
#[derive(Debug, Default)]
struct Cancel {
    flag: AtomicBool,
    waker: AtomicWaker,
}

#[derive(Debug, Default)]
struct Late {
    model: String,
    key_id: Option<String>,
    provider: Option<String>,
}

/// One running request.
#[derive(Debug)]
pub struct Entry {
    id: String,
    client: String,
    started: Instant,
    started_ms: i64,
    late: Mutex<Late>,
    stream: AtomicBool,
    bytes: AtomicU64,
    cancel: Cancel,
}

impl Entry {
    fn late(&self) -> std::sync::MutexGuard<'_, Late> {
        self.late
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The model the client named.
    pub fn set_model(&self, model: &str) {
        model.clone_into(&mut self.late().model);
    }

    /// The broker key it uses.
    pub fn set_key(&self, key_id: &str) {
        self.late().key_id = Some(key_id.to_owned());
    }

    /// The provider instance being tried.
    pub fn set_provider(&self, instance: &str) {
        let mut late = self.late();
        if late.provider.as_deref() != Some(instance) {
            late.provider = Some(instance.to_owned());
        }
    }

    /// It is a stream.
    pub fn set_stream(&self) {
        self.stream.store(true, Ordering::Relaxed);
    }

    /// Bytes sent to the client so far.
    pub fn add_bytes(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Ready once the operator cancelled the request. One task waits at a time — the
    /// request's own (its handler, then its streamed body) — since the last to poll is the one
    /// woken.
    pub fn poll_cancelled(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_cancelled() {
            return Poll::Ready(());
        }
        self.cancel.waker.register(cx.waker());
        // Checked again: a cancel between the first check and the registration woke nobody.
        if self.is_cancelled() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Whether the operator cancelled the request.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.flag.load(Ordering::Acquire)
    }

    fn view(&self) -> RunningRequest {
        let late = self.late();
        RunningRequest {
            id: self.id.clone(),
            started_ms: self.started_ms,
            age_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            client: self.client.clone(),
            key_id: late.key_id.clone(),
            model: late.model.clone(),
            provider: late.provider.clone(),
            stream: self.stream.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            cancelled: self.is_cancelled(),
        }
    }
}

/// Every running request, by request id.
#[derive(Debug, Default)]
pub struct Running {
    map: Arc<DashMap<String, Arc<Entry>>>,
}

/// A request's place in [`Running`]; dropping it (when the request ends) removes it.
#[derive(Debug)]
pub struct Registration {
    entry: Arc<Entry>,
    map: Arc<DashMap<String, Arc<Entry>>>,
}

impl std::ops::Deref for Registration {
    type Target = Entry;
    fn deref(&self) -> &Entry {
        &self.entry
    }
}

impl Registration {
    /// The entry itself, for a wait that outlives the borrow of the registration.
    pub fn entry(&self) -> Arc<Entry> {
        self.entry.clone()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.map.remove(&self.entry.id);
    }
}

impl Running {
    /// Registers request `id` of `client`, started at `started_ms`.
    pub fn register(&self, id: &str, client: &str, started_ms: i64) -> Registration {
        let entry = Arc::new(Entry {
            id: id.to_owned(),
            client: client.to_owned(),
            started: Instant::now(),
            started_ms,
            late: Mutex::new(Late::default()),
            stream: AtomicBool::new(false),
            bytes: AtomicU64::new(0),
            cancel: Cancel::default(),
        });
        self.map.insert(id.to_owned(), entry.clone());
        Registration {
            entry,
            map: self.map.clone(),
        }
    }

    /// Every running request, oldest first.
    pub fn list(&self) -> Vec<RunningRequest> {
        let mut v: Vec<RunningRequest> = self.map.iter().map(|e| e.view()).collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.age_ms));
        v
    }

    /// Cancels request `id`: it ends at once, recorded as cancelled. `None` when no such
    /// request is running.
    pub fn cancel(&self, id: &str) -> Option<RunningRequest> {
        let entry = self.map.get(id)?.clone();
        entry.cancel.flag.store(true, Ordering::Release);
        entry.cancel.waker.wake();
        Some(entry.view())
    }

    /// Number of requests running.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none is running.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_register_show_cancel_and_leave() {
        let r = Running::default();
        let a = r.register("req_a", "uds:uid=1", 5);
        a.set_model("chat");
        a.set_key("key_1");
        a.set_provider("fake-0");
        a.set_stream();
        a.add_bytes(100);
        let listed = r.list();
        assert_eq!(listed.len(), 1);
        let v = &listed[0];
        assert_eq!(
            (
                v.model.as_str(),
                v.key_id.as_deref(),
                v.provider.as_deref(),
                v.stream,
                v.bytes
            ),
            ("chat", Some("key_1"), Some("fake-0"), true, 100)
        );
        assert!(!a.is_cancelled());
        assert!(r.cancel("req_a").is_some_and(|v| v.cancelled));
        assert!(a.is_cancelled());
        assert!(r.cancel("req_zz").is_none());
        drop(a);
        assert!(r.is_empty(), "an ended request leaves");
    }
}
