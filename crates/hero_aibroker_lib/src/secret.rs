//! Secrets (provider keys, tokens) as a type that never prints or serializes its value.

use std::fmt;

/// A secret string. `Debug` and `Display` print `***`; it implements no `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The raw value, for the one place that must send it (an upstream `Authorization` header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `sk-…abcd` style hint for operators: never more than the last 4 characters.
    pub fn masked(&self) -> String {
        let tail: String = self
            .0
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if self.0.chars().count() <= 8 {
            "***".to_owned()
        } else {
            format!("***{tail}")
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("sk-canary-1234567890");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.masked(), "***7890");
        assert_eq!(Secret::new("short").masked(), "***");
    }
}
