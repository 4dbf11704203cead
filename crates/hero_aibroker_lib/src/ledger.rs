//! The usage ledger: a background batch writer. (being written)
