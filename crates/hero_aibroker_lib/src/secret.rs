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

    /// Whether `presented` is this secret, compared in constant time (over SHA-256 digests, so
    /// neither the length nor a matching prefix shows in the timing).
    pub fn matches(&self, presented: &str) -> bool {
        use sha2::{Digest, Sha256};
        use subtle::ConstantTimeEq;
        let a: [u8; 32] = Sha256::digest(self.0.as_bytes()).into();
        let b: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(a.ct_eq(&b))
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

/// `text` from an upstream with credentials taken out before it reaches a client, the ledger
/// or a log: every occurrence of `key` (the instance's own key), the token after `Bearer `, and
/// anything shaped like an API key (`sk-` followed by 8 or more key characters) become `***`.
pub fn redact(text: &str, key: Option<&Secret>) -> String {
    let mut out = match key.map(Secret::expose).filter(|k| k.len() >= 4) {
        Some(k) => text.replace(k, "***"),
        None => text.to_owned(),
    };
    out = mask_after(&out, "Bearer ", 1);
    out = mask_after(&out, "bearer ", 1);
    mask_after(&out, "sk-", 8)
}

/// Replaces the run of key characters that follows each `prefix` (when at least `min` long)
/// with `***`, keeping the prefix.
fn mask_after(text: &str, prefix: &str, min: usize) -> String {
    let is_key_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let after = &from[prefix.len()..];
        let run = after.find(|c: char| !is_key_char(c)).unwrap_or(after.len());
        out.push_str(prefix);
        if run >= min && !after[..run].starts_with("***") {
            out.push_str("***");
        } else {
            out.push_str(&after[..run]);
        }
        rest = &after[run..];
    }
    out.push_str(rest);
    out
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
    use super::{Secret, redact};

    #[test]
    fn redact_takes_out_keys_bearer_tokens_and_key_shapes() {
        let key = Secret::new("plain-key-1234");
        let text = "bad key plain-key-1234; Authorization: Bearer abc.def-ghi; \
                    also sk-proj-ABCDEFGH12 and sk-no";
        assert_eq!(
            redact(text, Some(&key)),
            "bad key ***; Authorization: Bearer ***; also sk-*** and sk-no"
        );
        assert_eq!(redact("nothing here", None), "nothing here");
        assert_eq!(redact("Bearer ", None), "Bearer ");
    }

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("sk-canary-1234567890");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.masked(), "***7890");
        assert_eq!(Secret::new("short").masked(), "***");
        assert!(s.matches("sk-canary-1234567890"));
        assert!(!s.matches("sk-canary-123456789"));
        assert!(!s.matches(""));
    }
}
