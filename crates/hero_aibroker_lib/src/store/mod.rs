//! The store. (being written)
