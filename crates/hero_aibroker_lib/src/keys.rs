//! Broker API keys: creation, hashing, lookup and per-key limits. (being written)
